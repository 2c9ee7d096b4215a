"""Typed dependencies: routes receive the services the lifespan built, never globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from genaiops.config import Settings
from genaiops.gateway.service import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
