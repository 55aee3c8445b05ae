"""rnnstab: will gradients in a recurrent network vanish or explode, why, and by how much."""

from rnnstab.activations import Activation, activation_names, get_activation, register_activation
from rnnstab.checkpoint import (
    RecurrentLayer,
    layers_from_module,
    layers_from_tensors,
    load_inputs,
    load_recurrent_layers,
)
from rnnstab.exceptions import (
    ArgumentTypeError,
    InvalidArgumentError,
    MissingDependencyError,
    NonFiniteError,
    RnnstabError,
    RnnstabWarning,
    ShapeError,
)
from rnnstab.identities import (
    IDENTITIES,
    IdentityCheck,
    check_induction,
    check_newton_quadratic,
    check_newton_rnn,
    check_taylor,
    induction_check,
    run_identities,
)
from rnnstab.jacobian import JacobianTrace, jacobian_norms
from rnnstab.lyapunov import (
    LyapunovSpectrum,
    SingularValueSpectrum,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    product_lyapunov_spectrum,
    singular_value_spectrum,
)
from rnnstab.optimizers import check_ema_bias, check_ema_unrolled, check_momentum_ema
from rnnstab.report import Report, write_report
from rnnstab.rnn import VanillaRNN
from rnnstab.store import Configuration, Record, load_sweep
from rnnstab.sweep import Grid, SweepProgress, SweepResult, run_sweep, sweep_network
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
from rnnstab.weightnorm import (
    check_weightnorm_gradient,
    check_weightnorm_growth,
    check_wn_bn,
    norm_growth,
    weightnorm_gradients,
)
from rnnstab.weights import init_weights, scale_to_threshold, spectral_norm

__version__ = "0.1.0"

__all__ = [
    "IDENTITIES",
    "REGIMES",
    "Activation",
    "ArgumentTypeError",
    "BoundViolation",
    "Configuration",
    "Grid",
    "IdentityCheck",
    "InvalidArgumentError",
    "JacobianTrace",
    "LyapunovSpectrum",
    "MeanField",
    "MissingDependencyError",
    "NonFiniteError",
    "Record",
    "RecurrentLayer",
    "Report",
    "RnnstabError",
    "RnnstabWarning",
    "ShapeError",
    "SingularValueSpectrum",
    "SweepProgress",
    "SweepResult",
    "ValidationCheck",
    "VanillaRNN",
    "Verdict",
    "__version__",
    "activation_names",
    "bound_violations",
    "check_ema_bias",
    "check_ema_unrolled",
    "check_induction",
    "check_momentum_ema",
    "check_newton_quadratic",
    "check_newton_rnn",
    "check_taylor",
    "check_weightnorm_gradient",
    "check_weightnorm_growth",
    "check_wn_bn",
    "critical_delta",
    "critical_gain",
    "gaussian_expectation",
    "get_activation",
    "induction_check",
    "init_weights",
    "jacobian_norms",
    "kaplan_yorke_dimension",
    "layers_from_module",
    "layers_from_tensors",
    "load_inputs",
    "load_recurrent_layers",
    "load_sweep",
    "log_bound",
    "lyapunov_spectrum",
    "mean_field",
    "norm_growth",
    "product_lyapunov_spectrum",
    "register_activation",
    "run_identities",
    "run_sweep",
    "run_validation",
    "scale_to_threshold",
    "singular_value_spectrum",
    "spectral_norm",
    "sweep_network",
    "verdicts",
    "weightnorm_gradients",
    "write_report",
]
