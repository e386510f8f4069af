"""Training settings of a run, typed: how the teacher and the student train (:class:`TrainConfig`,
the config's ``train`` section), the weights of the teacher's loss terms (:class:`LossWeights`,
its ``losses`` section) and the kernel student's grid (:class:`KernelSettings`, its ``krr``
section). Plain dataclasses, no torch: :class:`~pipeline.config.settings.RunConfig` holds them,
and the schema (``workflow/schemas/config.schema.yaml``) declares the same keys with the same
defaults (``tests/config/test_registry.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KERNEL_FEATURES", "LR_SCHEDULES", "KernelSettings", "LossWeights", "TrainConfig"]


@dataclass
class LossWeights:
    """Weights of the teacher's terms; 0 switches a term off (ASGN-S = reconstruction and clustering off)."""

    property: float = 1.0  # w_p
    reconstruction: float = 1.0  # w_r
    clustering: float = 1.0  # w_c
    # L_p = mean over the true labels + pseudo x mean over the pseudo-labels + helpers x mean over
    # the helping properties (pipeline.learn.losses.grouped_property_loss): 0 leaves a group out
    pseudo: float = 1.0
    helpers: float = 1.0


#: Student learning-rate schedules (TrainConfig.lr_schedule).
LR_SCHEDULES = ("constant", "plateau")


@dataclass
class TrainConfig:
    """Optimisation settings of the teacher and the student (paper defaults)."""

    lr: float = 1e-3  # Adam learning rate, teacher and student
    batch_size: int = 32  # molecules per training batch
    eval_batch_size: int = 256  # molecules per inference batch
    teacher_epochs: int = 20  # teacher epochs per round (over the whole pool)
    # round 0's teacher epochs: Algorithm 1 pre-trains the teacher on the pool before the first
    # selection; None = teacher_epochs
    pretrain_epochs: int | None = None
    # the teacher of round r > 0 starts from round r-1's weights (True) or from a fresh
    # initialisation (False: the paper's Random baseline re-initialises when a batch is labelled)
    warm_start: bool = True
    student_max_epochs: int = 500  # upper bound; early stopping usually ends sooner
    patience: int = 20  # student: epochs without a better validation MAE before stopping
    # student learning rate: "constant", or "plateau" (multiply by lr_factor after lr_patience epochs
    # without a better validation score, down to min_lr; schnetpack's ReduceLROnPlateau)
    lr_schedule: str = "constant"
    lr_factor: float = 0.5
    lr_patience: int = 10
    min_lr: float = 1e-5
    weights: LossWeights = field(default_factory=LossWeights)  # w_p, w_r, w_c, pseudo; 0 switches off
    alpha: float = 0.4  # reconstruction: sampled atom pairs per atom of a molecule (masked atoms i)
    # L_p and L_c read the reconstruction's masked pass too (one pass, as the authors' code) instead
    # of a clean pass of their own (pipeline.learn.losses.teacher_loss). One pass had the lower validation
    # MAE on benchmark-cpu (HOMO and U0, 3 seeds) and is ~1.4x faster, so it is the default.
    shared_pass: bool = True
    cluster_every: int = 5  # teacher epochs between Sinkhorn re-assignments of cluster ids
    sinkhorn_lam: float = 25.0  # lambda of the entropy-regularised transport
    atomref: bool = True  # fit per-element references for sum-readout targets
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on the CPU)
    # How the teacher uses unlabelled molecules: "asgn" (reconstruction + clustering + pseudo-labels)
    # or "mean_teacher" (consistency to an exponential moving average of the weights; baseline).
    semi: str = "asgn"
    ema_decay: float = 0.99  # mean_teacher: EMA decay of the weights per step
    consistency: float = 1.0  # mean_teacher: weight of the consistency loss
    noise: float = 0.05  # mean_teacher: std (Å) of the Gaussian noise on distances, per forward

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")

    def epochs(self, round: int) -> int:
        """Teacher epochs of round ``round`` (round 0 pre-trains for ``pretrain_epochs``)."""
        if round == 0 and self.pretrain_epochs is not None:
            return self.pretrain_epochs
        return self.teacher_epochs


#: What the kernel student's local kernel compares (``krr.features``).
KERNEL_FEATURES = ("fchl19", "teacher")


@dataclass
class KernelSettings:
    """The kernel student's (``student_kind: krr``) hyperparameter grid: each target's sigma (the
    Gaussian's width in FCHL19 space) and lambda (the ridge) are chosen on the validation molecules
    among these. The defaults hold benchmark-cpu's choices at 1,000 labels inside the grid (U0:
    sigma 4, lambda 1e-4; HOMO: a flat valley from sigma 1, lambda 0.1 to sigma 4, lambda 1e-2)."""

    sigmas: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    lambdas: list[float] = field(default_factory=lambda: [1e-9, 1e-7, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    #: the atoms' vectors the kernel compares (KERNEL_FEATURES): "fchl19" (qmllib's FCHL19) or
    #: "teacher" (the round's teacher's node embeddings, standardised on the training atoms)
    features: str = "fchl19"

    def __post_init__(self) -> None:
        if self.features not in KERNEL_FEATURES:
            raise ValueError(f"krr.features must be one of {KERNEL_FEATURES}, got {self.features!r}")
        for name in ("sigmas", "lambdas"):
            values = getattr(self, name)
            if not values or not all(v > 0 and v != float("inf") for v in values):
                raise ValueError(f"krr.{name} must be positive finite numbers, got {values}")
