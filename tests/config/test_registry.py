"""The one registry of names the package and the workflow share: schema, implementations, jobs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.config import registry
from pipeline.config.registry import SOURCES
from pipeline.config.units import TARGETS
from pipeline.data.sources import get_source
from pipeline.label import base as label_base
from pipeline.selection import strategies as select

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def _enum(*path: str) -> list[str]:
    node = SCHEMA["$defs"]
    for key in path:
        node = node[key] if key in node else node["properties"][key]
    return node["enum"]


def test_the_schema_offers_exactly_the_registered_names():
    assert _enum("run", "strategy") == list(registry.STRATEGIES)
    assert _enum("dataset", "oracle", "name") == list(registry.ORACLES)
    assert _enum("run", "train", "semi") == list(registry.TEACHERS)
    assert _enum("run", "student_kind") == list(registry.STUDENTS)
    assert _enum("run", "model", "backbone") == list(registry.BACKBONES)
    assert _enum("run", "initial", "strategy") == list(registry.INITIAL_STRATEGIES)
    assert _enum("dataset", "source") == list(SOURCES)


def test_implementations_are_keyed_by_the_registry():
    for name in SOURCES:  # every registered source imports and says its own name
        assert get_source(name).name == name
    for name, info in registry.STRATEGIES.items():  # each names a picking function that imports
        assert callable(info.pick_function()), name
        assert select.get_strategy(name).needs == info.needs
    for name, info in registry.TEACHERS.items():  # and each teacher kind its training loop
        assert callable(info.train_function()), name
    assert label_base.ORACLES is registry.ORACLES
    for info in registry.ORACLES.values():
        assert (info.single_point is not None) == (info.kind == "compute")
        assert info.targets is None or set(info.targets) <= set(TARGETS)


@pytest.mark.parametrize(
    ("lookup", "name", "message"),
    [
        (
            select.get_strategy,
            "bald",
            "unknown strategy 'bald'; choose one of kcenter, random, qbc, krr_variance, mc_dropout, lcmd, "
            "bait, kmeanspp",
        ),
        (
            label_base.get_oracle,
            "orca",
            "unknown oracle 'orca'; choose one of answer_key, pyscf, xtb, ani1x, ani1ccx, external",
        ),
        (registry.teacher_info, "vat", "unknown train.semi 'vat'; choose one of asgn, mean_teacher"),
        (registry.initial_info, "gmm", "unknown initial_strategy 'gmm'; choose one of random, kcenter"),
    ],
)
def test_an_unknown_name_is_refused_with_the_valid_ones(lookup, name, message):
    with pytest.raises(ValueError, match=message):
        lookup(name)


def test_oracle_jobs_get_their_threads_and_gpus_from_the_oracle():
    pyscf, xtb = registry.ORACLES["pyscf"], registry.ORACLES["xtb"]
    assert pyscf.job_settings({"basis": "def2-SVP"}, threads=4) == {"basis": "def2-SVP", "threads": 4}
    assert pyscf.job_settings({"threads": 2}, threads=4) == {"threads": 2}  # the config's own wins
    assert xtb.job_settings({}, threads=4) == {}  # tblite takes no thread setting
    assert pyscf.gpus({"device": "gpu"}) == 1 and pyscf.gpus({}) == 0 and xtb.gpus({"device": "gpu"}) == 0
    with pytest.raises(ValueError, match="computes nothing"):
        registry.ORACLES["answer_key"].single_point_function()


def test_schema_defaults_are_the_dataclass_defaults():
    """A default lives in the dataclass and the schema both; they must not drift (the workflow fills
    the schema's, Python users get the dataclass'). ``model.dist_min``/``dist_max`` are null in both:
    resolved from the data at run time (the distance bins' range)."""
    from pipeline.config.network import ModelSettings, VisnetSettings
    from pipeline.config.training import KernelSettings, LossWeights, TrainConfig

    run = SCHEMA["$defs"]["run"]["properties"]
    for section, instance in (
        (("train",), TrainConfig()),
        (("model",), ModelSettings()),
        (("model", "visnet"), VisnetSettings()),
        (("losses",), LossWeights()),
        (("krr",), KernelSettings()),
    ):
        node = run[section[0]]
        for key in section[1:]:
            node = node["properties"][key]
        for key, spec in node["properties"].items():
            if spec.get("type") == "object":  # a subsection: its own line above
                assert spec["default"] == {}, f"{section}.{key}"
                continue
            assert spec["default"] == getattr(instance, key), f"{section}.{key}"
    assert run["model"]["properties"]["dist_min"]["default"] is None


def test_run_settings_defaults_are_the_schemas():
    """run.json's defaults in Python (RunConfig, its typed model and train sections included) are the
    ones the workflow fills in from the schema."""
    from snakemake.utils import validate

    from pipeline.config.settings import RunConfig

    run = {"dataset": "d", "split": {"val": 1, "test": 1}, "targets": ["homo"]}
    config = {"datasets": {"d": {"source": "qm9"}}, "runs": {"r": run}}
    validate(config, schema=str(REPO / "workflow/schemas/config.schema.yaml"))
    filled, defaults = RunConfig.from_config("r", config["runs"]["r"]), RunConfig(run="r", targets=["homo"])
    for f in dataclasses.fields(RunConfig):
        assert getattr(filled, f.name) == getattr(defaults, f.name), f.name
    assert filled.as_dict() == defaults.as_dict()


def test_every_dataclass_setting_is_in_the_schema_or_derived():
    """A setting is declared once in Python: the config's sections are exactly the typed settings'
    fields (a new field must be a schema key, whose default the test above compares); the network's
    full architecture adds only what the run and the dataset decide."""
    from pipeline.config.network import ModelConfig, ModelSettings
    from pipeline.config.training import KernelSettings, LossWeights, TrainConfig

    run = SCHEMA["$defs"]["run"]["properties"]
    derived = {"train": {"weights"}, "model": set(), "losses": set(), "krr": set()}  # weights: `losses`
    sections = (
        ("train", TrainConfig),
        ("model", ModelSettings),
        ("losses", LossWeights),
        ("krr", KernelSettings),
    )
    for section, cls in sections:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields - set(run[section]["properties"]) == derived[section], section
        assert set(run[section]["properties"]) <= fields, section
    # the dataset's cutoff and RBF, the run's targets, the elements the data holds, per target
    architecture = {"cutoff", "rbf_start", "rbf_stop", "targets", "max_z", "n_atom_types", "readout"}
    assert {f.name for f in dataclasses.fields(ModelConfig)} - set(run["model"]["properties"]) == architecture
