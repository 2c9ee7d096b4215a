"""LoRA training and GGUF adapter export with the real SmolLM2 weights: llama.cpp computes
what PEFT computes, bad adapters are refused, runs are reproducible and resume exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genaiops.training import base as bases
from genaiops.training import data as datasets
from genaiops.training import export, lora
from genaiops.training.export import AdapterError
from tests.training.conftest import SmolBase, fact_rows, write_jsonl

PROMPT = "The secret word of the day is banana. The secret word of the day is"


def _peft_model(checkpoint: Path, std: float) -> object:
    import torch

    torch.manual_seed(0)
    cfg = lora.TrainConfig(r=8, alpha=16, target_modules=lora.ALL_PROJECTIONS)
    model = lora._lora_model(bases.load_model(checkpoint, "fp32"), cfg)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=std)
    return model


def _export(model: object, base: bases.BaseModel, path: Path) -> export.AdapterInfo:
    from peft import get_peft_model_state_dict

    config = model.base_model.model.config  # type: ignore[attr-defined]
    return export.export(
        get_peft_model_state_dict(model), path, base.architecture, 16,
        config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
    )  # fmt: skip


def test_llama_cpp_applies_the_exported_adapter_like_peft(
    smol: SmolBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from llama_cpp import Llama

    base, checkpoint, renderer = smol
    model = _peft_model(checkpoint, std=0.2)
    ids = renderer.tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model(ids).logits[0].float().numpy()  # type: ignore[operator]
        with model.disable_adapter():  # type: ignore[attr-defined]
            expected_base = model(ids).logits[0].float().numpy()  # type: ignore[operator]
    adapter = tmp_path / "adapter.gguf"
    info = _export(model, base, adapter)
    assert info.rank == 8 and info.tensors == 210
    assert export.check(adapter, base.gguf_path).rank == 8

    def llama_logits(lora_path: str | None) -> np.ndarray:
        llm = Llama(str(base.gguf_path), n_ctx=128, logits_all=True, verbose=False,
                    lora_path=lora_path, n_threads=2)  # fmt: skip
        tokens = llm.tokenize(PROMPT.encode(), add_bos=False)
        assert tokens == ids[0].tolist()
        llm.eval(tokens)
        out = np.array(llm.scores[: len(tokens)])
        llm.close()
        return out

    with_adapter, without = llama_logits(str(adapter)), llama_logits(None)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    good, base_only = corr(with_adapter, expected), corr(without, expected)
    # Without the query/key reordering, llama.cpp would apply a different change.
    monkeypatch.setattr(export, "rotary_permute", lambda w, n_head: w)
    _export(model, base, tmp_path / "unpermuted.gguf")
    wrong = corr(llama_logits(str(tmp_path / "unpermuted.gguf")), expected)
    # Measured: 0.992 with the adapter, 0.805 without, 0.948 unreordered.
    assert good > 0.985 and good - base_only > 0.1 and good - wrong > 0.02
    assert corr(with_adapter - without, expected - expected_base) > 0.95


def test_rotary_permute_groups_the_halves_of_each_head() -> None:
    rows = np.arange(8).reshape(8, 1)  # 2 heads of 4 rows: [0 1 2 3] [4 5 6 7]
    assert export.rotary_permute(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_bad_adapters_are_refused(smol: SmolBase, tmp_path: Path) -> None:
    import gguf

    base, _, _ = smol
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(AdapterError, match="not a readable GGUF"):
        export.check(junk, base.gguf_path)
    with pytest.raises(AdapterError, match="not a GGUF LoRA adapter"):
        export.check(base.gguf_path, base.gguf_path)

    def fake(name: str, arch: str, a: tuple[int, int], b: tuple[int, int]) -> Path:
        path = tmp_path / name
        w = gguf.GGUFWriter(str(path), arch)
        w.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
        w.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros(a, dtype=np.float32))
        w.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros(b, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    assert export.check(fake("ok.gguf", "llama", (8, 576), (576, 8)), base.gguf_path).rank == 8
    with pytest.raises(AdapterError, match="for gemma3 models, the base is llama"):
        export.check(fake("gemma.gguf", "gemma3", (8, 576), (576, 8)), base.gguf_path)
    with pytest.raises(AdapterError, match="does not fit the base"):
        export.check(fake("shape.gguf", "llama", (8, 640), (640, 8)), base.gguf_path)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes((tmp_path / "ok.gguf").read_bytes()[:-1000])
    with pytest.raises(AdapterError):
        export.check(truncated, base.gguf_path)


def _tiny_run(
    smol: SmolBase, tmp_path: Path, work: Path, hooks: lora.Hooks | None = None, **config: Any
) -> tuple[object, lora.TrainResult]:
    base, checkpoint, renderer = smol
    path = write_jsonl(tmp_path / "train.jsonl", fact_rows("The codename is Zafiro-77.", 12))
    ds = datasets.load(path, renderer, 96)
    cfg = lora.TrainConfig(**{"r": 4, "alpha": 8, "epochs": 2, "batch_size": 4,
                              "checkpoint_every": 2, "seed": 7, "dtype": "fp32",
                              "learning_rate": 1e-3, **config})  # fmt: skip
    pad = renderer.tokenizer.eos_token_id
    return lora.train(lambda: bases.load_model(checkpoint, "fp32"), ds.examples, [], cfg,
                      work, pad, hooks)  # fmt: skip


def _adapter_weights(model: object) -> dict[str, np.ndarray]:
    from peft import get_peft_model_state_dict

    return {k: v.float().numpy() for k, v in get_peft_model_state_dict(model).items()}


def test_runs_are_reproducible_and_resume_exactly(smol: SmolBase, tmp_path: Path) -> None:
    first, result = _tiny_run(smol, tmp_path, tmp_path / "a")
    assert result.steps == 6 and result.eval_after["loss"] < result.eval_before["loss"]
    again, result_again = _tiny_run(smol, tmp_path, tmp_path / "b")
    assert result_again.losses == result.losses

    # Interrupted after step 3 (the checkpoint holds step 2), then resumed.
    steps: list[int] = []
    hooks = lora.Hooks(
        on_step=lambda p: steps.append(p.step), should_cancel=lambda: len(steps) >= 3
    )
    with pytest.raises(lora.Cancelled):
        _tiny_run(smol, tmp_path, tmp_path / "c", hooks)
    assert (tmp_path / "c" / "checkpoint" / "state.pt").exists()
    resumed, result_resumed = _tiny_run(smol, tmp_path, tmp_path / "c")
    assert result_resumed.resumed_from_step == 2
    assert result_resumed.losses == pytest.approx(result.losses, abs=1e-4)
    a, b = _adapter_weights(first), _adapter_weights(resumed)
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="r must be") as err:
        lora.TrainConfig(r=0, dtype="fp8", target_modules=("mlp",)).validate()
    assert "dtype must be" in str(err.value) and "target_modules must be among" in str(err.value)
    # Settings that would only fail once the job ran are refused up front too.
    with pytest.raises(ValueError, match="seed must be") as err:
        lora.TrainConfig(seed=-1, checkpoint_every=-1).validate()
    assert "checkpoint_every must be" in str(err.value)


@pytest.mark.timeout(900)
def test_a_kill_between_the_checkpoint_renames_resumes_from_the_previous_one(
    smol: SmolBase, tmp_path: Path
) -> None:
    steps: list[int] = []
    hooks = lora.Hooks(
        on_step=lambda p: steps.append(p.step), should_cancel=lambda: len(steps) >= 3
    )
    work = tmp_path / "c"
    with pytest.raises(lora.Cancelled):
        _tiny_run(smol, tmp_path, work, hooks)
    # Killed after the checkpoint moved aside and before the new one took its place.
    (work / "checkpoint").rename(work / "checkpoint.old")
    _, resumed = _tiny_run(smol, tmp_path, work)
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    assert (work / "checkpoint").exists() and not (work / "checkpoint.old").exists()


@pytest.mark.timeout(900)
def test_a_step_reports_the_mean_loss_of_its_accumulated_batches(
    smol: SmolBase, tmp_path: Path
) -> None:
    # With a learning rate too small to move the weights, each batch's loss is the same in
    # both runs: one step per batch, or one step per group of four batches (6 batches:
    # a group of 4 and a last one of 2).
    same: dict[str, Any] = {"batch_size": 2, "epochs": 1, "learning_rate": 1e-12,
                            "dropout": 0.0, "checkpoint_every": 0}  # fmt: skip
    _, single = _tiny_run(smol, tmp_path, tmp_path / "one", **same)
    _, grouped = _tiny_run(smol, tmp_path, tmp_path / "four", grad_accum=4, **same)
    per_batch = single.losses
    assert len(per_batch) == 6 and grouped.steps == 2
    expected = [np.mean(per_batch[0:4]), np.mean(per_batch[4:6])]
    assert grouped.losses == pytest.approx(expected, abs=1e-4)


def test_a_last_partial_group_is_averaged_over_its_own_batches() -> None:
    assert lora.group_sizes(12, 5) == [5] * 10 + [2] * 2
    assert lora.group_sizes(6, 3) == [3] * 6
    assert lora.group_sizes(3, 1) == [1, 1, 1]


def test_a_failed_export_leaves_no_half_written_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf
    import torch

    state = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(4, 576),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(576, 4),
    }

    def disk_full(self: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", disk_full)
    out = tmp_path / "adapter.gguf"
    with pytest.raises(OSError, match="No space"):
        export.export(state, out, "llama", 16, 30, 9, 3)
    assert list(tmp_path.iterdir()) == []


def test_epoch_hooks_see_each_trained_state_once(smol: SmolBase, tmp_path: Path) -> None:
    # 12 examples in batches of 4: 3 batches an epoch. One step per batch: epochs end on
    # steps 3 and 6 (the last epoch's model is the result, not a checkpoint).
    seen: list[tuple[int, int]] = []
    hooks = lora.Hooks(on_epoch_end=lambda epoch, step, model: seen.append((epoch, step)))
    _tiny_run(smol, tmp_path, tmp_path / "a", hooks, epochs=3)
    assert seen == [(1, 3), (2, 6)]
    # Accumulating 4 batches a step, across epochs: the first epoch ends before any step.
    seen.clear()
    _tiny_run(smol, tmp_path, tmp_path / "b", hooks, epochs=3, grad_accum=4)
    assert seen == [(2, 1)]
