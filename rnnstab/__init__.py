"""rnnstab: will gradients in a recurrent network vanish or explode, why, and by how much."""

from rnnstab.activations import Activation, activation_names, get_activation, register_activation
from rnnstab.exceptions import (
    ArgumentTypeError,
    InvalidArgumentError,
    MissingDependencyError,
    NonFiniteError,
    RnnstabError,
    RnnstabWarning,
    ShapeError,
)
from rnnstab.identities import induction_check
from rnnstab.jacobian import JacobianTrace, jacobian_norms
from rnnstab.report import Report, write_report
from rnnstab.rnn import VanillaRNN
from rnnstab.store import Configuration, Record, load_sweep
from rnnstab.sweep import Grid, SweepProgress, SweepResult, run_sweep, sweep_network
from rnnstab.theory import REGIMES, BoundViolation, Verdict, bound_violations, log_bound, verdicts
from rnnstab.weights import init_weights, scale_to_threshold, spectral_norm

__version__ = "0.1.0"

__all__ = [
    "REGIMES",
    "Activation",
    "ArgumentTypeError",
    "BoundViolation",
    "Configuration",
    "Grid",
    "InvalidArgumentError",
    "JacobianTrace",
    "MissingDependencyError",
    "NonFiniteError",
    "Record",
    "Report",
    "RnnstabError",
    "RnnstabWarning",
    "ShapeError",
    "SweepProgress",
    "SweepResult",
    "VanillaRNN",
    "Verdict",
    "__version__",
    "activation_names",
    "bound_violations",
    "get_activation",
    "induction_check",
    "init_weights",
    "jacobian_norms",
    "load_sweep",
    "log_bound",
    "register_activation",
    "run_sweep",
    "scale_to_threshold",
    "spectral_norm",
    "sweep_network",
    "verdicts",
    "write_report",
]
