"""rnnstab: will gradients in a recurrent network vanish or explode, why, and by how much."""

from rnnstab.activations import Activation, activation_names, get_activation, register_activation
from rnnstab.exceptions import (
    ArgumentTypeError,
    InvalidArgumentError,
    NonFiniteError,
    RnnstabError,
    ShapeError,
)
from rnnstab.identities import induction_check
from rnnstab.jacobian import JacobianTrace, jacobian_norms
from rnnstab.lyapunov import (
    LyapunovSpectrum,
    SingularValueSpectrum,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    product_lyapunov_spectrum,
    singular_value_spectrum,
)
from rnnstab.rnn import VanillaRNN
from rnnstab.theory import (
    REGIMES,
    BoundViolation,
    MeanField,
    Verdict,
    bound_violations,
    critical_delta,
    critical_gain,
    gaussian_expectation,
    log_bound,
    mean_field,
    verdicts,
)
from rnnstab.validation import ValidationCheck, run_validation
from rnnstab.weights import init_weights, scale_to_threshold, spectral_norm

__version__ = "0.1.0"

__all__ = [
    "REGIMES",
    "Activation",
    "ArgumentTypeError",
    "BoundViolation",
    "InvalidArgumentError",
    "JacobianTrace",
    "LyapunovSpectrum",
    "MeanField",
    "NonFiniteError",
    "RnnstabError",
    "ShapeError",
    "SingularValueSpectrum",
    "ValidationCheck",
    "VanillaRNN",
    "Verdict",
    "__version__",
    "activation_names",
    "bound_violations",
    "critical_delta",
    "critical_gain",
    "gaussian_expectation",
    "get_activation",
    "induction_check",
    "init_weights",
    "jacobian_norms",
    "kaplan_yorke_dimension",
    "log_bound",
    "lyapunov_spectrum",
    "mean_field",
    "product_lyapunov_spectrum",
    "register_activation",
    "run_validation",
    "scale_to_threshold",
    "singular_value_spectrum",
    "spectral_norm",
    "verdicts",
]
