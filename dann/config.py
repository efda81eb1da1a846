"""A run's configuration: every training setting in one place (default, type, choices, range
check, --help text, group). main.py's flags, each run's config.json and the command that
reproduces a run are all made from `Config`; valid.py takes its shared flags from here too.
"""
import dataclasses
import math
import shlex
import types
import typing
from dataclasses import dataclass, fields

import torch

from dann.common import UserError, setting
from dann.domains import DOMAINS, default_arch, source_parts
from dann.methods import METHODS
from dann.models import ARCHS, INPUT_NORMS


# each method's settings (dann/methods.py), once each, in the order the methods first name them
METHOD_SETTINGS = tuple(dict.fromkeys(s for m in METHODS.values() for s in m.settings))


def settings_group(settings):
    """The --help group of a method's settings: the methods that read them, and their paper."""
    readers = [name for name, m in METHODS.items() if settings in m.settings]
    return f"{' and '.join(readers)} (defaults: {settings.paper})"


GROUPS = {"task": "task", "optimisation": "optimisation (defaults: the paper's recipe)",
          **{s.__name__: settings_group(s) for s in METHOD_SETTINGS}, "run": "run"}


@dataclass(frozen=True)
class TaskSettings:
    """What is trained and how it is optimised: the first of Config's settings."""
    source: str = setting("svhn", f"labelled domain: {', '.join(DOMAINS)}, or a folder with a subfolder of pictures "
                          "per class (see README, 'Adapt to your own pictures'); several joined by + (mnist+synth) "
                          "train on all of them, each step drawing an equal share of its labelled batch from each; "
                          "the domain classifier then tells the target from the sources together",
                          "task", metavar="DOMAIN|FOLDER[+...]")
    target: str = setting("mnist", "domain to adapt to, its labels unused: a built-in name or a folder, with class "
                          "subfolders (labelled: target accuracy is reported) or its pictures directly in it",
                          "task", metavar="DOMAIN|FOLDER")
    method: str = setting("dann", "training method (dann/methods.py): dann adapts (the paper); dann-im adds information "
                        "maximisation on the target (SHOT); vada adds conditional entropy and virtual adversarial "
                        "training (Shu et al. 2018); dirt-t refines a model (--init) on the target alone (DIRT-T, "
                        "the same paper); self-train trains a fresh model on the labels a model (--init) gives the "
                        "target images, a student meant to be noised with --augment (Noisy Student, Xie et al. 2020); "
                        "source-only ignores the target (lower bound); target-only trains on target "
                        "labels (upper bound); self-ensemble matches a mean teacher's confident predictions on "
                        "augmented target pictures (French et al. 2018); adamatch learns pseudo-labels of weakly "
                        "augmented target pictures on strongly augmented ones (Berthelot et al. 2022)", "task",
                        choices=METHODS)
    arch: typing.Optional[str] = setting(None, "network; default: the paper's for the source (svhn for svhn, mnist "
                                         "otherwise); mnist-bn: French et al.'s digit network with batch norm, each "
                                         "domain's batch normalised by its own statistics", "task", choices=ARCHS)
    init: typing.Optional[str] = setting(None, "start from the weights of this model (the evaluated ones): a run "
                                         "folder, a checkpoint file or URL, or a bundled model's name; dirt-t "
                                         "needs one, e.g. a dann run, and self-train its teacher, e.g. a dirt-t "
                                         "run. With --seeds, {seed} in it becomes each run's seed: "
                                         "runs/dann-row/seed{seed}", "task", metavar="RUN|CHECKPOINT")
    dropout: float = setting(0.0, "dropout in the classifiers' hidden layers", "task")
    input_norm: str = setting("standardize", "what the network makes of each picture: standardize sets its channels "
                              "to zero mean and unit variance (instance normalisation, as DIRT-T), scale maps its "
                              "pixels to [-1, 1], joint standardizes all its channels together (French et "
                              "al.'s code), keeping the ratios between its colours", "task", choices=INPUT_NORMS)
    target_imbalance: float = setting(1.0, "keep only the first R^(-c/(C-1)) of each class c of a labelled target's "
                                      "training and test pictures (class 0 whole, the last 1/R): a target whose "
                                      "class mix is not the source's, to measure the label-free estimates on; 1: "
                                      "every picture", "task", metavar="R")
    augment: bool = setting(False, "shift every training image by up to 4 pixels and vary its brightness, contrast "
                            "and saturation by up to 40%%, drawn per image, in batches on the device (dirt-t: the model "
                            "sees the augmented images, its teacher the plain ones; self-train: likewise); not in "
                            "the paper's recipe", "task")
    epochs: int = setting(100, "epochs; one epoch = the smaller training set once", "optimisation")
    batch_size: int = setting(128, "images per domain per step", "optimisation")
    optimizer: typing.Optional[str] = setting(None, "sgd or adam; default: the method's paper's (adam for "
                                              "self-ensemble, as French et al.; sgd otherwise)", "optimisation",
                                              choices=("sgd", "adam"))
    lr: typing.Optional[float] = setting(None, "mu_0, the initial learning rate; default: the method's (0.01 with sgd, "
                                         "the DANN paper's; 0.001 with self-ensemble's adam)", "optimisation")
    lr_alpha: typing.Optional[float] = setting(None, "alpha in mu_p = mu_0 / (1 + alpha p)^beta; default: the "
                                               "method's (10; 0, a constant rate, with self-ensemble's adam)",
                                               "optimisation")
    lr_beta: float = setting(0.75, "beta in the learning-rate schedule", "optimisation")
    gamma: float = setting(10.0, "gamma in lambda_p = 2 / (1 + exp(-gamma p)) - 1", "optimisation")
    momentum: float = setting(0.9, "SGD momentum (adam: its beta1 stays 0.9)", "optimisation")
    weight_decay: float = setting(1e-5, "L2 weight decay", "optimisation")
    ema: float = setting(0.0, "decay of an exponential moving average of the weights, which is then the model "
                         "evaluated and shared (VADA's reference code: 0.998); 0: off", "optimisation")


@dataclass(frozen=True)
class RunSettings:
    """How a run is carried out: the last of Config's settings."""
    device: str = setting("auto", "where to compute; auto: cuda when present", "run", choices=("auto", "cpu", "cuda"))
    bf16: bool = setting(False, "forward pass and losses in bfloat16 autocast; weights, gradients and the SGD update "
                         "stay float32. About 2x faster on CPUs with AVX512-BF16 or AMX (slower on CPUs without); "
                         "see README, 'Speed'", "run")
    cuda_graph: bool = setting(True, "on a GPU, launch every step's kernels from Python instead of replaying one "
                               "captured CUDA graph: slower, but easier to profile or debug (default: graph on)", "run")
    seed: int = setting(0, "random seed; the same seed on the CPU gives the same numbers", "run")
    limit: typing.Optional[int] = setting(None, "use at most N training images per domain (quick trials)", "run",
                                          metavar="N")
    eval_every: int = setting(5, "test accuracies every K epochs and at the end", "run", metavar="K")
    save_every: int = setting(10, "checkpoint every K epochs and at the end", "run", metavar="K")
    data_dir: typing.Optional[str] = setting(None, "dataset folder (default: $DANN_DATA_DIR, else ./data)", "run")
    no_download: bool = setting(False, "fail instead of downloading missing datasets", "run")


@dataclass(frozen=True)
class Config(RunSettings, *reversed(METHOD_SETTINGS), TaskSettings):
    """A run's settings: the task's and the optimisation's, each method's (dann/methods.py), the run's.
    main.py's flags are made from these fields, config.json holds them, and a Config is checked when it
    is made, so an invalid one never exists. A new setting is one field."""

    # Settings that change how a run is carried out but not the model it trains: left out of the
    # command that reproduces a run, and --device is the one a resumed run may change.
    NOT_IN_COMMAND: typing.ClassVar = ("device", "data_dir", "no_download", "eval_every", "save_every", "cuda_graph")

    def __post_init__(self):
        if not all(_has_type(getattr(self, f.name), f) for f in fields(self)):
            raise TypeError("settings of the wrong type or outside their choices")
        if self.arch is None:
            object.__setattr__(self, "arch", default_arch(self.source))
        for name in ("epochs", "batch_size", "eval_every", "save_every", "teacher_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag_name(name)} must be at least 1")
        for f in fields(self):  # nan and inf parse as floats, and would train a NaN model
            if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"{flag_name(f.name)} must be a finite number, not {getattr(self, f.name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError("--momentum must be in [0, 1)")
        if not 0 <= self.dropout < 1:
            raise ValueError("--dropout must be in [0, 1)")
        if self.lr is not None and self.lr <= 0:
            raise ValueError("--lr must be positive")
        for name in ("ema", "teacher_ema"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{flag_name(name)} must be in [0, 1)")
        for name in ("confidence", "relative_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{flag_name(name)} must be in [0, 1]")
        for name in ("weight_decay", "lr_alpha", "lr_beta", "gamma", "im_weight", "vat_source_weight",
                     "vat_target_weight", "vat_radius", "teacher_weight", "consistency_weight", "balance_weight"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{flag_name(name)} must be 0 or more")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")
        if self.target_imbalance < 1:
            raise ValueError("--target-imbalance must be at least 1 (1: the target as it is)")
        parts = source_parts(self.source)
        if "" in parts or len(set(parts)) < len(parts):
            raise ValueError(f"--source {self.source}: join different domains with single +, as in mnist+synth")
        if self.batch_size < len(parts):
            raise ValueError(f"--batch-size must be at least the number of sources ({len(parts)})")
        if self.target in parts and METHODS[self.method].uses_unlabelled:
            raise ValueError("--source and --target are the same domain: there is nothing to adapt"
                             if len(parts) == 1 else f"--target {self.target} is one of the sources: there is nothing "
                             "to adapt to")
        method = METHODS[self.method]
        if method.teacher and method.teacher.needs_init and self.init is None:
            raise ValueError(f"--method {self.method} learns from a trained model: name it with --init RUN|CHECKPOINT")
        if method.augments and self.augment:
            raise ValueError(f"--method {self.method} augments its pictures as its paper does; leave out --augment")
        if method.teacher and method.teacher.averages_student and self.ema:
            raise ValueError(f"--method {self.method} evaluates its mean teacher, an average of the weights already "
                             "(--teacher-ema); leave out --ema")

    @property
    def recipe(self):
        """The optimiser, initial rate and annealing the run trains with: the method's paper's, but
        where --optimizer, --lr or --lr-alpha say otherwise."""
        given = {name: getattr(self, name) for name in RECIPE if getattr(self, name) is not None}
        return dataclasses.replace(METHODS[self.method].recipe, **given)

    @classmethod
    def from_flags(cls, args):
        """argparse's namespace -> Config; a setting the parser lacks keeps its default."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})

    @classmethod
    def from_saved(cls, saved, where):
        """A run folder's config.json (parsed) -> Config; a missing setting (a run from before it
        existed) gets its default. `where` names the file in the one-line error."""
        foreign = UserError(f"{where} does not hold the settings main.py writes (edited by hand?); restore it or "
                            "start a new run")
        saved = in_current_words(saved)
        if not isinstance(saved, dict) or not set(saved) <= {f.name for f in fields(cls)}:
            raise foreign
        try:
            return cls(**saved)
        except TypeError:
            raise foreign from None
        except ValueError as e:
            raise UserError(f"{where} says {e}; restore it or start a new run") from None

    def as_dict(self):
        return dataclasses.asdict(self)

    def command(self):
        """`python main.py` with the flags whose values differ from the defaults: what decides the model."""
        return " ".join(["python", "main.py", *map(shlex.quote, self.flags())])

    def flags(self, everything=False):
        """main.py's flags for the settings that differ from their defaults: those that decide the
        model, and with everything=True also those that say how the run is carried out."""
        words = []
        for f in fields(self):
            value = getattr(self, f.name)
            if (f.name in self.NOT_IN_COMMAND and not everything) or self._is_default(f, value):
                continue
            if isinstance(value, bool):  # a switch: --NAME turns an off one on, --no-NAME an on one off
                words.append(flag_name(f.name) if value else "--no-" + f.name.replace("_", "-"))
            else:
                words += [flag_name(f.name), str(value)]
        return words

    def _is_default(self, f, value):
        """Whether a setting's value is what the run would have without its flag."""
        return value == f.default or (f.name == "arch" and value == default_arch(self.source)) or (
            f.name in RECIPE and value == getattr(METHODS[self.method].recipe, f.name))

    def same_model(self, other):
        """Whether two configurations train the same model (they may differ in how it is carried out)."""
        return self.recipe == other.recipe and all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self)
            if f.name not in self.NOT_IN_COMMAND and f.name not in RECIPE)


RECIPE = ("optimizer", "lr", "lr_alpha")  # the settings whose default is the method's (methods.Recipe)


def in_current_words(saved):
    """A saved configuration (config.json, or a checkpoint's "config") as today's Config names its
    settings: runs made before the setting "mode" was renamed "method" still load and resume."""
    if isinstance(saved, dict) and "mode" in saved and "method" not in saved:
        return {("method" if name == "mode" else name): value for name, value in saved.items()}
    return saved


def _value_type(f):
    """A field's type without Optional, and whether None is allowed."""
    if isinstance(f.type, types.UnionType) or typing.get_origin(f.type) is typing.Union:
        return next(k for k in typing.get_args(f.type) if k is not type(None)), True
    return f.type, False


def _has_type(value, f):
    kind, optional = _value_type(f)
    if value is None:
        return optional
    if isinstance(value, bool) != (kind is bool):  # True is an int to Python, not to a config
        return False
    return isinstance(value, (int, float) if kind is float else kind) and value in f.metadata.get("choices", (value,))


GROUP_OF = {f.name: s.__name__ for s in METHOD_SETTINGS for f in fields(s)}  # a method's setting -> its group


def flag_name(name):
    return "--" + name.replace("_", "-")


def add_flags(parser, names=None, without=()):
    """Add Config's settings (those named, else all but those `without`) to an argparse parser, with
    their help and defaults; all but named ones go in --help groups, returned for the caller's flags."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()} if names is None else {}
    for f in fields(Config):
        if (names is not None and f.name not in names) or f.name in without:
            continue
        where, meta = groups.get(f.metadata["group"] or GROUP_OF[f.name], parser), f.metadata
        if f.type is bool and f.default:  # an on-by-default switch is turned off by --no-NAME
            where.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=meta["help"])
        elif f.type is bool:
            where.add_argument(flag_name(f.name), action="store_true", help=meta["help"] + " (default: off)")
        else:
            kind = _value_type(f)[0]
            shown = "" if f.default is None else f" (default: {f.default:g})" if kind is float else f" (default: {f.default})"
            where.add_argument(flag_name(f.name), type=kind, default=f.default, choices=meta.get("choices"),
                               metavar=meta.get("metavar"), help=meta["help"] + shown)
    return groups


def pick_device(name):
    """--device auto|cpu|cuda -> torch.device; asking for a CUDA device that is not there is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible; use --device cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


