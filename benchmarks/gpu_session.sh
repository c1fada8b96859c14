#!/usr/bin/env bash
# The GPU measurements of the README as one prepared script (about 19 minutes on one H100, all phases):
#   OUT=/tmp/emflow_gpu bash benchmarks/gpu_session.sh
#   PHASES="smoke matmul profile" bash benchmarks/gpu_session.sh   # some phases (a device call has 10 minutes)
# Phases: smoke throughput matmul unrolled profile (the default: all five), and parity (only when named).
# Needs jax with CUDA, flax, optax, orbax-checkpoint, chex, tqdm and (for the baseline) torch.
# Writes versions, logs and JSON under $OUT; every phase has its own time limit, so a slow
# phase cannot eat the next one, and each JSON is rewritten after every row.
set -u
OUT=${OUT:-/tmp/emflow_gpu}
PHASES=${PHASES:-smoke throughput matmul unrolled profile}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
want() { [[ " $PHASES " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/nvidia_smi.txt"
# Smoke: versions, and one tiny EM step on the accelerator; stop at once if it fails.
if want smoke; then
  timeout 120 $PY - <<'PYEOF' 2>&1 | tee "$OUT/smoke.log"
import jax, flax, optax, chex
import emflow
from emflow import train
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, "chex", chex.__version__,
      "devices", jax.devices())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except ImportError:
    print("no torch")
model = emflow.GenMM(emflow.Glow((8, 8, 1), 2, 1, 8), 2)
x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 1))
opt = train.make_optimizer(train.TrainConfig())
state = train.init_state(model, opt, jax.jit(model.init)(jax.random.PRNGKey(1), x))
state, m = jax.jit(lambda s, b: train.train_step(model, opt, s, b))(state, x)
print("smoke step loss", float(m["loss"]), "on", jax.default_backend())
assert jax.default_backend() == "gpu", "JAX does not see the GPU"
PYEOF
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "smoke failed"; exit 1; }
fi

# The paper's Glow (3 x 4 x 512, 32x32x1), K in 1,4,8, batch 64 and 256: GenMM's default vmap over
# generators in float32 and with bfloat16 conditioners, and the PyTorch eager loop (about 8 minutes).
if want throughput; then
  timeout ${T1:-540} $PY -m benchmarks.throughput --axes vmap --dtypes float32,bfloat16 --repeats 20 \
    --json "$OUT/throughput_vmap.json" 2>&1 | grep -v cuda_timer | tee "$OUT/throughput_vmap.log"
fi
# lax convolutions against conv_impl="matmul" (each 3x3 convolution one matrix product), K in 4,8, batch 256
# where the 25% target is, float32 and bf16, all in one run (about 5 minutes). Every row also gives XLA's
# bytes per step and the share of the memory bandwidth they imply.
if want matmul; then
  timeout ${T4:-360} $PY -m benchmarks.throughput --components 4,8 --batches 256 --axes vmap \
    --dtypes float32,bfloat16 --conv_impls lax,matmul --repeats 20 --no_torch --json "$OUT/throughput_matmul.json" \
    2>&1 | grep -v cuda_timer | tee "$OUT/throughput_matmul.log"
fi
# The unrolled loop over generators, K in 4,8 (about 4 minutes).
if want unrolled; then
  timeout ${T2:-300} $PY -m benchmarks.throughput --components 4,8 --axes unrolled --dtypes float32,bfloat16 \
    --repeats 20 --no_torch --json "$OUT/throughput_unrolled.json" 2>&1 | grep -v cuda_timer \
    | tee "$OUT/throughput_unrolled.log"
fi
# Where a step's time goes: K = 4, batch 256, per kind of XLA operation (traces stay on the machine).
# The current default (lax, float32) and the likeliest candidate for the 25% target (matmul, bf16).
if want profile; then
  for variant in "lax float32" "matmul bfloat16"; do
    set -- $variant
    timeout ${T3:-120} $PY -m benchmarks.profile_step --components 4 --batch 256 --dtype $2 --conv_impl $1 \
      --out "/tmp/emflow_profile_$1_$2" 2>&1 | grep -v cuda_timer | tee "$OUT/profile_$1_$2.log"
  done
fi
# bf16 vs float32 NLL parity on a short MNIST run (needs MNIST under $EMFLOW_DATA_DIR; for the device tool,
# copy ../shared/data/mnist into an ignored folder of the repository and name it in `carry`).
if want parity; then
  timeout ${T5:-300} $PY -m benchmarks.training_variants --compare compute_dtype --json "$OUT/parity_bf16.json" \
    2>&1 | grep -v cuda_timer | tail -n 12 | tee "$OUT/parity_bf16.log"
fi
echo "gpu_session done"
