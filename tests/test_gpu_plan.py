"""The HLO traffic count of ``benchmarks.gpu_plan``, on HLO text whose bytes are counted by hand.

(Compiling for a GPU needs the CUDA plugin, which the test environment does not have; the
parser is what turns that compile into numbers, and it reads the same text format as here.)
"""
import jax
import jax.numpy as jnp
import pytest

from benchmarks.gpu_plan import kernel_traffic, shape_bytes

HLO = """HloModule jit_step, entry_computation_layout={(f32[64,128]{1,0}, bf16[128,32]{1,0})->f32[64,32]{1,0}}

%fused_relu (p0: f32[64,32]) -> f32[64,32] {
  %p0 = f32[64,32]{1,0} parameter(0)
  %zero = f32[] constant(0)
  ROOT %max = f32[64,32]{1,0} maximum(%p0, %zero)
}

ENTRY %main.7 (x.1: f32[64,128], w.1: bf16[128,32]) -> f32[64,32] {
  %x.1 = f32[64,128]{1,0} parameter(0)
  %w.1 = bf16[128,32]{1,0} parameter(1)
  %convert = f32[128,32]{1,0} fusion(%w.1), kind=kLoop, calls=%fused_convert
  %gemm = (f32[64,32]{1,0}, s8[1024]{0}) custom-call(%x.1, %convert), custom_call_target="__cublas$gemm"
  %gte = f32[64,32]{1,0} get-tuple-element(%gemm), index=0
  %view = f32[32,64]{0,1} bitcast(%gte)
  ROOT %relu = f32[64,32]{1,0} fusion(%gte), kind=kLoop, calls=%fused_relu
}
"""


def test_shape_bytes():
    assert shape_bytes("f32[64,128]{1,0}") == 64 * 128 * 4
    assert shape_bytes("(bf16[3,5]{1,0}, pred[7]{0}, s32[])") == 3 * 5 * 2 + 7 + 4


def test_kernel_traffic_counts_results_and_operands_of_kernels_only():
    rows = {r["name"]: r for r in kernel_traffic(HLO)}
    assert set(rows) == {"convert", "gemm", "relu"}  # parameters, get-tuple-element and bitcast run no kernel
    assert rows["convert"]["bytes"] == 128 * 32 * 2 + 128 * 32 * 4
    assert rows["convert"]["kind"] == "fusion:kLoop"
    # the GEMM writes its result and workspace, and reads x and the converted w
    assert rows["gemm"]["bytes"] == (64 * 32 * 4 + 1024) + 64 * 128 * 4 + 128 * 32 * 4
    assert rows["gemm"]["kind"] == "custom-call:__cublas$gemm"
    # the ReLU reads the GEMM's result through the get-tuple-element (its own size, not the tuple's)
    assert rows["relu"]["bytes"] == 2 * 64 * 32 * 4


def test_kernel_traffic_reads_a_real_compiled_module():
    # On the CPU backend: the same text format; a matrix product must read both inputs and write its result.
    a = jnp.ones((256, 512))
    b = jnp.ones((512, 128))
    rows = kernel_traffic(jax.jit(lambda a, b: a @ b).lower(a, b).compile().as_text())
    assert sum(r["bytes"] for r in rows) >= (256 * 512 + 512 * 128 + 256 * 128) * 4
    with pytest.raises(ValueError, match="no ENTRY computation"):
        kernel_traffic("HloModule empty")
