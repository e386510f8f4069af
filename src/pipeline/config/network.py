"""The network's settings, typed and torch-free: the config's ``model`` section
(:class:`ModelSettings`, what a user chooses) and the full architecture a checkpoint records
(:class:`ModelConfig`: those settings plus what the run and the dataset decide: targets and their
readouts, the cutoff, the distance bins' range). :class:`pipeline.model.asgn.ASGNModel` is built from
a :class:`ModelConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pipeline.config.registry import BACKBONES
from pipeline.config.units import EXTENSIVE_TARGETS, TARGETS

__all__ = ["LARGEST_Z", "MAX_Z", "N_ATOM_TYPES", "READOUTS", "ModelConfig", "ModelSettings", "VisnetSettings"]


#: Readouts a target can have: ``sum`` for extensive properties, ``mean`` for intensive ones.
READOUTS = ("sum", "mean")

#: Largest atomic number of the atom embedding and the per-element references (ModelConfig.max_z:
#: rows 0..MAX_Z, then the mask token's).
MAX_Z = 100
#: Classes of the atom-type head that reconstructs masked atoms (ModelConfig.n_atom_types): class c
#: is atomic number c, so it knows 0..N_ATOM_TYPES - 1.
N_ATOM_TYPES = 100
#: The heaviest element every network of a run can learn from (einsteinium, 99): its embedding,
#: references and atom-type head all have room for atomic numbers 1..LARGEST_Z. Featurisation rejects a
#: molecule with a heavier element, naming it (:func:`pipeline.data.featurise.check_molecules`), so
#: none reaches a model, where Z 101-118 would index past the references (and take the mask token's
#: embedding) and fermium (100) past the atom-type head. The sizes are not raised to fit: that would
#: change the initialisation, hence the results, of every run.
LARGEST_Z = min(MAX_Z, N_ATOM_TYPES - 1)


@dataclass
class VisnetSettings:
    """The config's ``model.visnet`` section: the ViSNet backbone's own settings (read only when
    ``model.backbone`` is ``visnet``; PyG's defaults but the cutoff's)."""

    lmax: int = 1  # highest degree of the vector features' spherical harmonics (1 or 2)
    heads: int = 8  # attention heads; model.hidden must be a multiple of it
    rbf_count: int = 32  # exponential-normal radial basis functions up to the cutoff
    cutoff: float = 5.0  # Å; neighbours within it, taken from the stored graph (at most its cutoff)

    def __post_init__(self) -> None:
        if self.lmax not in (1, 2):
            raise ValueError(f"model.visnet.lmax must be 1 or 2, got {self.lmax}")
        if self.heads < 1 or self.rbf_count < 1 or not self.cutoff > 0:
            raise ValueError("model.visnet needs heads and rbf_count >= 1 and cutoff > 0")


@dataclass
class ModelSettings:
    """The config's ``model`` section: what a user chooses of the architecture (the schema declares
    the same keys and defaults). ``dist_min``/``dist_max`` None: the distance bins span the dataset's
    pair distances (:meth:`pipeline.config.settings.RunConfig.architecture`)."""

    #: the representation (pipeline.config.registry.BACKBONES): "schnet" (the paper's) or "visnet"
    backbone: str = "schnet"
    hidden: int = 96  # H: width of node embeddings and of the continuous filters
    n_interactions: int = 4  # L: interaction blocks (message-passing layers)
    rbf_count: int = 300  # Gaussian RBF centres (ModelConfig.rbf_start/rbf_stop: their range)
    n_clusters: int = 100  # M: classes of the cluster head (clustering loss L_c)
    n_dist_bins: int = 30  # K_e: classes of the distance-bin head (reconstruction loss L_r)
    dist_min: float | None = None  # Å; None: from the dataset's distances
    dist_max: float | None = None
    dropout: float = 0.0  # dropout probability inside the property head only (for MC-dropout)
    visnet: VisnetSettings = field(default_factory=VisnetSettings)

    def __post_init__(self) -> None:
        if isinstance(self.visnet, Mapping):
            self.visnet = VisnetSettings(**self.visnet)


@dataclass
class ModelConfig(ModelSettings):
    """Architecture of :class:`~pipeline.model.asgn.ASGNModel`: the run's :class:`ModelSettings` and
    what the run and the dataset decide; stored in every checkpoint (:meth:`to_dict`)."""

    # Gaussian RBF expansion of a distance d (Å): count centres mu_k = start + k * width, k = 0..count-1,
    # width = (stop - start) / count, e_k(d) = exp(-(d - mu_k)^2 / (2 width^2)). Paper: 0-30 Å every 0.1 Å.
    rbf_start: float = 0.0
    rbf_stop: float = 30.0
    cutoff: float = 30.0  # Å; cosine cutoff of the filters, and pairs at or beyond it send nothing
    max_z: int = MAX_Z  # largest atomic number the embedding (and atomref) accepts
    targets: tuple[str, ...] = TARGETS  # property head outputs, in this order (pred[:, t])
    # target -> "sum" (extensive: per-atom contributions add up) or "mean" (intensive); targets not
    # given default to "sum" if in pipeline.config.units.EXTENSIVE_TARGETS, else "mean"
    readout: dict[str, str] = field(default_factory=dict)
    # Å; the K_e equal-width distance bins span [dist_min, dist_max] (distances below / above fall in
    # the first / last bin). The stages set them from the distances in the dataset (QM9: ~0.9-11 Å),
    # so the bins resolve bond lengths; [0, cutoff] would leave most bins empty.
    dist_min: float = 0.0
    dist_max: float = 30.0
    n_atom_types: int = N_ATOM_TYPES  # classes of the atom-type head; class c is atomic number c

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown model.backbone {self.backbone!r}; choose one of {sorted(BACKBONES)}")
        if self.backbone == "visnet" and self.visnet.cutoff > self.cutoff:
            raise ValueError(
                f"model.visnet.cutoff ({self.visnet.cutoff:g} Å) exceeds the dataset's cutoff "
                f"({self.cutoff:g} Å): the stored graphs hold no pairs beyond it"
            )
        self.targets = tuple(self.targets)
        if not self.targets:
            raise ValueError("targets must name at least one property")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets has duplicates: {self.targets}")
        unknown = set(self.readout) - set(self.targets)
        if unknown:
            raise ValueError(f"readout names targets that are not in targets: {sorted(unknown)}")
        self.readout = {
            t: self.readout.get(t, "sum" if t in EXTENSIVE_TARGETS else "mean") for t in self.targets
        }
        bad = {t: r for t, r in self.readout.items() if r not in READOUTS}
        if bad:
            raise ValueError(f"readout must be one of {READOUTS}, got {bad}")
        if self.hidden < 2 or self.n_interactions < 1 or self.rbf_count < 1:
            raise ValueError("hidden must be >= 2, n_interactions and rbf_count >= 1")
        if not self.rbf_stop > self.rbf_start or not self.cutoff > 0:
            raise ValueError("need rbf_stop > rbf_start and cutoff > 0")
        if not self.dist_max > self.dist_min >= 0:
            raise ValueError(f"need dist_max > dist_min >= 0, got {self.dist_min}, {self.dist_max}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def rbf_width(self) -> float:
        return (self.rbf_stop - self.rbf_start) / self.rbf_count

    @property
    def mask_token(self) -> int:
        """Index of the mask token in the atom embedding (one past the largest atomic number)."""
        return self.max_z + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (lists for tuples)."""
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**values)
