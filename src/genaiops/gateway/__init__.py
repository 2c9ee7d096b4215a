"""Gateway: the request pipeline (pipeline.py) and the model catalog it routes over
(service.py)."""
