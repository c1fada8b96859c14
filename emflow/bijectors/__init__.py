"""Pure-function bijectors: ``init(key, x)``, ``forward(params, x)``, ``inverse(params, y)``."""
from emflow.bijectors.actnorm import ActNorm
from emflow.bijectors.autoregressive import MaskedAutoregressive
from emflow.bijectors.base import Bijector, check_batch
from emflow.bijectors.conditioners import ConvConditioner, MLPConditioner, ZeroConv
from emflow.bijectors.coupling import Coupling
from emflow.bijectors.flow_step import Chain, FlowStep, Repeat
from emflow.bijectors.linear import InvertibleLinear, random_rotation
from emflow.bijectors.logit import Logit
from emflow.bijectors.permute import Reverse
from emflow.bijectors.split import Split
from emflow.bijectors.squeeze import Squeeze
from emflow.bijectors.whiten import Whiten

__all__ = [
    "ActNorm", "Bijector", "Chain", "ConvConditioner", "Coupling", "FlowStep", "InvertibleLinear", "Logit",
    "MLPConditioner", "MaskedAutoregressive", "Repeat", "Reverse", "Split", "Squeeze", "Whiten", "ZeroConv", "check_batch",
    "random_rotation",
]
