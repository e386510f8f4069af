"""The SLURM profile on a real cluster: a single-node SLURM this test starts, used as the README says.

It needs Debian's ``slurm-wlm`` and ``munge`` (``make test`` installs them where it runs as root with
apt-get) and root, to start the daemons and to write ``/etc/slurm/slurm.conf``: the SLURM executor
plugin's job step drops ``SLURM_CONF``, so the configuration must be at SLURM's default path. Without
them the test skips and says why. It never touches a cluster it did not start: a slurm.conf that is
not its own, or a running slurmctld, makes it skip.

What it checks, on ``config/slurm-smoke.yaml`` through ``workflow/profiles/slurm`` edited as the
README tells a user without accounting or GPUs to edit it: every per-round file is written; Snakemake
interrupted (SIGINT to its own PID) mid-run cancels its jobs and, started again, finishes what is
left without redoing finished jobs; the selections equal those of an uninterrupted local run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import ONE_THREAD
from test_workflow import ROUND_FILES as WORKFLOW_ROUND_FILES

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
SMOKE = REPO / "config" / "slurm-smoke.yaml"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by tests/test_slurm.py"
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
#: what every round writes (test_workflow's list, and the embedding map its test checks beside it)
ROUND_FILES = (*WORKFLOW_ROUND_FILES, "embedding_map.png")


def _why_not() -> str | None:
    """Why no cluster can be started here, or None."""
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} missing; make test installs slurm-wlm and munge"
            " where it runs as root)"
        )
    if os.geteuid() != 0:
        return "starting SLURM's daemons needs root"
    if SLURM_CONF.exists() and MARK not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} belongs to a cluster this test did not start"
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        return "a slurmctld is already running here"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _default_sigint() -> None:
    """In the child before it runs: SIGINT back to its default (a Python child then installs its
    KeyboardInterrupt handler, which it skips when it inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _stop(pid_file: Path) -> None:
    """Stop the daemon whose PID the file holds, and wait (bounded) until it is gone."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
        _wait(lambda: not Path(f"/proc/{pid}").exists(), 20, f"PID {pid} to stop")
    except ProcessLookupError:
        pass
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def _slurm_conf(d: Path, munge: Path) -> str:
    """slurm.conf of a one-node cluster on this host: one CPU partition, no accounting, state in ``d``."""
    host = socket.gethostname()
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
    return f"""{MARK}; removed when it ends
ClusterName=asgn-smoke
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={munge}/socket
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=300
ReturnToService=2
NodeName={host} CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node cluster (munge, slurmctld, slurmd) with one CPU partition and no accounting."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool"):
        (d / sub).mkdir(mode=0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    munge = d / "munge"
    try:
        try:
            subprocess.run(
                ["munged", "--force", f"--key-file={key}", f"--socket={munge}/socket",
                 f"--pid-file={munge}/pid", f"--log-file={munge}/log", f"--seed-file={munge}/seed"],
                check=True, timeout=30, capture_output=True,
            )  # fmt: skip
            SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SLURM_CONF.write_text(_slurm_conf(d, munge))
            subprocess.run(["slurmctld", "-i"], check=True, timeout=30, capture_output=True)
            subprocess.run(["slurmd"], check=True, timeout=30, capture_output=True)

            def idle() -> bool:
                states = subprocess.run(
                    ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
                )
                return "idle" in states.stdout

            _wait(idle, 60, "the node to be idle (sinfo)")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, TimeoutError) as err:
            # the machine cannot run the daemons (no hostname resolution, no ports...): nothing of
            # the workflow's has run yet, so this is a skip with the reason, not a failure
            logs = "; ".join(
                f"{log.name}: {log.read_text().strip().splitlines()[-1]}"
                for log in (munge / "log", d / "slurmctld.log", d / "slurmd.log")
                if log.exists() and log.read_text().strip()
            )
            pytest.skip(f"could not start a one-node SLURM cluster here: {err} ({logs or 'no daemon logs'})")
        yield d
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True, timeout=30)
        for pid_file in (d / "slurmd.pid", d / "slurmctld.pid", munge / "pid"):
            _stop(pid_file)
        SLURM_CONF.unlink(missing_ok=True)


def user_profile(folder: Path) -> Path:
    """The shipped profile as the README tells a user without accounting or GPUs to fill it in."""
    text = PROFILE.read_text()
    edits = {
        '"<partition>"': '"cpu"',
        '"<gpu-partition>"': '"cpu"',
        "# slurm-status-command: squeue": "slurm-status-command: squeue",
        "    # gpu: 0 ": "    gpu: 0 ",
    }
    for old, new in edits.items():
        assert old in text, f"the README's edit {old!r} no longer applies to {PROFILE}"
        text = text.replace(old, new)
    lines = [line for line in text.splitlines() if "slurm_account:" not in line]
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("\n".join(lines) + "\n")
    return folder


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "--directory", str(workdir), "--configfile", str(SMOKE),
        "--replace-workflow-config", *ONE_THREAD, *extra,  # one thread per network job in both runs, alike
    ]  # fmt: skip


def venv_env() -> dict[str, str]:
    """The environment of a user who activated the venv: `pipeline` on PATH (jobs inherit it)."""
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}


def selections(workdir: Path) -> list[pd.DataFrame]:
    rounds = sorted((workdir / "results/runs/smoke").glob("round_*"))
    return [pd.read_parquet(r / "selected.parquet") for r in rounds]


def test_profile_on_a_real_cluster(cluster, tmp_path):
    env = venv_env()
    local = subprocess.run(
        snakemake_cmd(tmp_path / "local", "--cores", "2"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]

    work = tmp_path / "cluster"
    cmd = snakemake_cmd(
        work,
        "--profile", str(user_profile(tmp_path / "profile")),
        "--slurm-init-seconds-before-status-checks", "5",  # a smoke run: poll soon and often
        "--seconds-between-status-checks", "2",
    )  # fmt: skip
    log = tmp_path / "cluster-1.log"
    start = time.monotonic()
    with log.open("w") as out:
        # SIGINT as a terminal delivers it: a test run started in the background (`cmd &` in a
        # script) inherits SIGINT ignored, and Snakemake would then never see the interrupt
        first = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_default_sigint
        )
        teacher = work / "results/runs/smoke/round_00/teacher.pt"
        try:
            # interrupt once round 0's teacher is done (Snakemake says so: until then an interrupt
            # deletes its output as incomplete) and a later job is queued. Read Snakemake's own log
            # file, written record by record; the redirected stdout can lag behind under load.
            def teacher_done() -> bool:  # the first teacher to finish is round 0's
                logs = list((work / ".snakemake" / "log").glob("*.snakemake.log"))
                text = "".join(f.read_text() for f in logs)
                return re.search(r"Finished jobid: \d+ \(Rule: teacher\)", text) is not None

            _wait(lambda: teacher_done() or first.poll() is not None, 300, "round 0's teacher")
            _wait(lambda: "smoke" in _queue() or first.poll() is not None, 120, "a job after the teacher")
            # not in the instant Snakemake submits the next jobs, but while it polls the queue
            deadline = time.monotonic() + 3
            _wait(lambda: time.monotonic() > deadline or first.poll() is not None, 10, "a quiet moment")
        finally:
            first.send_signal(signal.SIGINT)  # as Ctrl-C in the user's terminal
            first.wait(timeout=120)
    assert first.returncode != 0, (
        "Snakemake finished before it could be interrupted: " + log.read_text()[-3000:]
    )
    # cancelled jobs may linger a moment as COMPLETING; a job left alone would still be pending or
    # running (a smoke job takes seconds)
    left = _queue(states="PENDING,RUNNING,SUSPENDED")
    assert "smoke" not in left, "Snakemake left its jobs in the queue when interrupted: " + _queue("%j %k %T")
    assert not (work / "results/runs/smoke/round_01/selected.parquet").exists()
    teacher_mtime = teacher.stat().st_mtime_ns

    again = subprocess.run(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400
    )
    elapsed = time.monotonic() - start
    assert again.returncode == 0, again.stdout[-5000:]
    assert "has been submitted with SLURM jobid" in again.stdout, "the restart ran nothing on the cluster"
    assert teacher.stat().st_mtime_ns == teacher_mtime, "the restart redid round 0's finished teacher"
    print(f"SLURM smoke run (interrupted once, resumed): {elapsed:.0f} s")

    for r in ("00", "01"):
        missing = [f for f in ROUND_FILES if not (work / f"results/runs/smoke/round_{r}/{f}").is_file()]
        assert missing == [], f"round_{r} lacks {missing}"
    for f in ("results/learning_curve.csv", "results/runs/smoke/rounds.csv"):
        assert (work / f).is_file(), f
    # seconds-long jobs ran in the Snakemake process; the featurisation and the network on the cluster
    ran = log.read_text() + again.stdout
    local = set(re.findall(r"^localrule (\w+):", ran, flags=re.M))
    assert local == {
        "all", "run_config", "split", "featurise_merge", "label", "label_holdout", "round_table",
        "learning_curve", "learning_curve_all", "embedding_map",
    }  # fmt: skip
    remote = set(re.findall(r"^rule (\w+):", ran, flags=re.M))
    assert remote == {"featurise_shard", "initial", "teacher", "embed", "student", "pseudo_label", "select"}

    ours, theirs = selections(work), selections(tmp_path / "local")
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs, strict=True):
        pd.testing.assert_frame_equal(a, b)


def _queue(fields: str = "%j %k", states: str | None = None) -> str:
    """Names of the jobs in SLURM's queue (the executor names them after Snakemake's run ID), of
    every state squeue lists or only of ``states``."""
    cmd = ["squeue", "-h", "-o", fields, *(["-t", states] if states else [])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
