"""fairtune: debias a trained PyTorch classifier by fine-tuning the weights that carry the bias.

>>> import fairtune
>>> result = fairtune.debias(model, external, method="swift")
>>> rows = fairtune.compare(model, external, test, methods="all", grid=True)
>>> fairtune.results_frame(rows)  # one row per method and seed, a column per metric
"""

from fairtune.api import compare, debias
from fairtune.data import FairData, balance
from fairtune.datasets import skew_groups
from fairtune.evaluation.evaluate import evaluate_model
from fairtune.methods import REGISTRY as METHODS
from fairtune.modelio import load_model, save_model
from fairtune.models import ModelSplit
from fairtune.reporting.frames import load_results, results_frame
from fairtune.splits import split_frame

__version__ = "0.1.0"
__all__ = [
    "METHODS",
    "FairData",
    "ModelSplit",
    "balance",
    "compare",
    "debias",
    "evaluate_model",
    "load_model",
    "load_results",
    "results_frame",
    "save_model",
    "skew_groups",
    "split_frame",
]
