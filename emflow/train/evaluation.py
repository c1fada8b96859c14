"""What a run measures after each epoch: likelihoods in batches, the metrics record, its log line."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.evaluation import diagnostics
from emflow.batches import map_batches
from emflow.interfaces import LikelihoodUnits
from emflow.train.start import check_model_and_config

Array = jax.Array


def mean_log_prob(params, data: Array, key: Array, batch_size: int, log_prob_fn) -> float:
    """Mean ``log_prob_fn(params, raw_batch, key_i)`` over the raw ``data``, in batches of one compiled shape."""
    checks.integer("mean_log_prob", "batch_size", batch_size, 1)
    return float(jnp.mean(map_batches(log_prob_fn, params, data, key, batch_size)))


def to_host(x) -> np.ndarray:
    """A numpy copy of ``x``, gathered from every process when it is spread over several."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def format_record(r: dict) -> str:
    """One line of an epoch's metrics record ``r``: train and test NLL, pi, whether pi was updated."""
    text = f"epoch {r['epoch']:4d}  train NLL {r['train_nll_nats_per_dim']:.4f}"
    if "test_nll_nats_per_dim" in r:
        text += f"  test NLL {r['test_nll_nats_per_dim']:.4f} nats/dim ({r['test_bits_per_dim']:.4f} bits/dim)"
    text += "  pi " + " ".join(f"{p:.3f}" for p in r["pi"]) + (" [EM update]" if r["em_update"] else "")
    if "final_prior_update" in r:
        text += " [final pi update, was " + " ".join(f"{p:.3f}" for p in r["final_prior_update"]["pi_before"]) + "]"
    if "components" in r:
        text += f"  purity {r['components']['purity']:.3f}"
    if r.get("dead"):
        text += f"  dead {r['dead']}"
    return text + f"  {r['seconds']:.1f}s"


class Evaluator:
    """An epoch's measurements under the current Phi, each pass compiled once per run.

    ``train_eval``: the first ``config.train_eval_size`` training examples; ``test``: the test set
    (None: none); both preprocessed with the fixed ``key`` every epoch, in batches of
    ``config.eval_batch_size``. With ``y_test``, one pass over the test set gives both its NLL and,
    after an EM round, the per-component report (``emflow.evaluation.diagnostics.component_report``).
    ``to_nats`` / ``to_bits`` turn a mean ``log p(x)`` into per-dimension units (the
    preprocessor's own where it has them: a ``Dequantizer`` counts the discrete data's units).
    """

    def __init__(self, model, preprocess, config, train_data: Array, test_data: Array | None, y_test, key: Array):
        check_model_and_config("Evaluator", model, config)
        self.log_prob_fn = jax.jit(lambda p, raw, k: model.log_prob(p, preprocess(k, raw)))
        self.joint_fn = jax.jit(lambda p, raw, k: model.component_log_prob(p, preprocess(k, raw)))
        self.train_eval, self.test, self.y_test, self.key = train_data[: config.train_eval_size], test_data, y_test, key
        self.batch_size = config.eval_batch_size
        num_dims = math.prod(model.event_shape)
        if isinstance(preprocess, LikelihoodUnits):
            self.to_nats, self.to_bits = preprocess.nats_per_dim, preprocess.bits_per_dim
        else:
            self.to_nats = lambda lp: -lp / num_dims
            self.to_bits = lambda lp: self.to_nats(lp) / math.log(2.0)

    def measure(self, params, em_round: bool) -> dict:
        """``{"train_nll_nats_per_dim", "train_bits_per_dim", ["test_nll_nats_per_dim", "test_bits_per_dim",
        "components"]}`` of ``params``."""
        train_log_px = mean_log_prob(params, self.train_eval, self.key, self.batch_size, self.log_prob_fn)
        out = {"train_nll_nats_per_dim": float(self.to_nats(train_log_px)),
               "train_bits_per_dim": float(self.to_bits(train_log_px))}
        if self.test is None:
            return out
        if self.y_test is not None:
            joint = map_batches(self.joint_fn, params, self.test, self.key, self.batch_size)
            test_log_px = float(jnp.mean(jax.nn.logsumexp(joint, axis=1)))
            if em_round:
                out["components"] = diagnostics.component_report(to_host(joint), to_host(self.y_test))
        else:
            test_log_px = mean_log_prob(params, self.test, self.key, self.batch_size, self.log_prob_fn)
        out["test_nll_nats_per_dim"] = float(self.to_nats(test_log_px))
        out["test_bits_per_dim"] = float(self.to_bits(test_log_px))
        return out


def epoch_record(epoch: int, state, e_step_name: str, em_round: bool, measured: dict, round_info: dict | None,
                 closing: dict | None, to_nats) -> dict:
    """The metrics record of ``epoch`` (0-based), one line of ``metrics.jsonl``, without its timings."""
    train_log_px = -float(state.nll_sum / state.gamma_count)
    record = {
        "epoch": epoch + 1, "step": int(state.step),
        "train_nll_nats_per_dim": measured["train_nll_nats_per_dim"],
        "train_bits_per_dim": measured["train_bits_per_dim"],
        # under Phi_old, over the epoch's batches (None where the E-step computed no likelihood: a warm start)
        "train_nll_old_nats_per_dim": float(to_nats(train_log_px)) if math.isfinite(train_log_px) else None,
        "mean_gamma": [float(v) for v in np.asarray(state.gamma_sum / state.gamma_count)],
        "pi": [float(v) for v in np.exp(np.asarray(state.params["log_pi"]))],
        "em_update": em_round,
        "e_step": e_step_name,
    }
    if round_info is not None:
        record["dead"] = round_info["dead"]
    if closing is not None:
        record["final_prior_update"] = closing
    for name in ("components", "test_nll_nats_per_dim", "test_bits_per_dim"):
        if name in measured:
            record[name] = measured[name]
    return record
