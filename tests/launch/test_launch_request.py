"""The launcher's command line: splitting, templating, paths, arrays, and every bad input (exit 2, nothing damaged)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from launch.container import absolute_paths, bind_folders, task_argv
from launch.profiles import PROFILE_DEFAULTS, load_profile
from launch.request import parse_request
from launch.submit import DEFAULT_MAX_ARRAY_SIZE, chunks, max_array_size
from nph.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def test_request_splits_launcher_keys_from_the_command(tmp_path: Path) -> None:
    req = parse_request(
        [
            "phantom",
            "cluster=local",
            "shards=4",
            "shard_arg=",
            "cluster.timeout_min=5",
            "out=runs/t_{k}",
            "seed={k}",
            "n=2",
            "experiment=tiny",
        ],
        cwd=tmp_path,
    )
    assert (req.command, req.cluster, req.shards, req.num_tasks) == ("phantom", "local", 4, 4)
    assert req.cluster_overrides == {"timeout_min": 5}
    assert req.nph_args == [f"out={tmp_path}/runs/t_{{k}}", "seed={k}", "n=2", "experiment=tiny"]
    assert req.task_args(2) == ["phantom", f"out={tmp_path}/runs/t_2", "seed=2", "n=2", "experiment=tiny"]
    assert req.launch_dir == tmp_path / "runs" / "launch"  # beside the per-task folders, not inside task 0's
    digest = hashlib.sha256(str(tmp_path / "runs").encode()).hexdigest()[:8]
    assert req.job_name == f"nph-runs-{digest}"  # one name per output folder: --dependency=singleton serialises
    assert req.wait is None and req.container is None


def test_shards_add_the_shard_override() -> None:
    req = parse_request(["phantom", "shards=3", "out=/data/o", "cluster=local"])
    assert [req.task_args(k)[-1] for k in range(3)] == ["shard=0/3", "shard=1/3", "shard=2/3"]
    assert req.launch_dir == Path("/data/o/launch")


def test_absolute_paths_touch_only_path_keys(tmp_path: Path) -> None:
    got = absolute_paths(["out=a/b", "data=[x,y]", "seed=3", "shard=0/4", "models=/abs", "out=null"], tmp_path)
    assert got == [f"out={tmp_path}/a/b", "data=[x,y]", "seed=3", "shard=0/4", "models=/abs", "out=null"]


def test_bind_folders_cover_every_path_once(tmp_path: Path) -> None:
    for sub in ("data/a", "data/b", "img", "out"):
        (tmp_path / sub).mkdir(parents=True)
    overrides = [
        f"out={tmp_path}/out/new/deeper",
        f"data=[{tmp_path}/data/a, {tmp_path}/data/b]",
        f"images={tmp_path}/img/*.nii.gz",
        "seed=3",
        "shard=0/4",
        f"predictions={{x: {tmp_path}/data/a}}",
    ]
    binds = bind_folders(overrides, extra=[tmp_path / "out" / "new" / "launch"], cwd=tmp_path)
    assert binds == [tmp_path / "img", tmp_path / "out", tmp_path / "data" / "a", tmp_path / "data" / "b"]


def test_task_argv_host_and_container() -> None:
    assert task_argv(["phantom", "n=1"], python="/py") == ["/py", "-m", "nph", "phantom", "n=1"]
    argv = task_argv(["phantom", "n=1"], Path("/img/nph.sif"), [Path("/a"), Path("/b")], "/bin/apptainer")
    assert argv[:6] == ["/bin/apptainer", "exec", "--nv", "--cleanenv", "--bind", "/a,/b"]
    assert argv[6:] == ["/img/nph.sif", "nph", "phantom", "n=1"]  # SLURM_* etc. cross --cleanenv by name


def test_container_environment_is_an_explicit_list(tmp_path: Path) -> None:
    from launch.container import cache_environment, container_environment

    host = {
        "SLURM_JOB_ID": "7",
        "CUDA_VISIBLE_DEVICES": "1",
        "MASTER_PORT": "2345",
        "WANDB_MODE": "offline",
        "PYTHONPATH": "/home/me/lib",
        "LD_LIBRARY_PATH": "/opt/conda/lib",
        "HOME": "/home/me",
    }
    passed = container_environment(host)
    assert passed == {
        "APPTAINERENV_SLURM_JOB_ID": "7",
        "APPTAINERENV_CUDA_VISIBLE_DEVICES": "1",
        "APPTAINERENV_MASTER_PORT": "2345",
        "APPTAINERENV_WANDB_MODE": "offline",
    }
    caches = cache_environment(tmp_path / "cache", {"MPLCONFIGDIR": "/mine"})
    assert "MPLCONFIGDIR" not in caches  # the user's choice stands
    assert caches["TRITON_CACHE_DIR"] == str(tmp_path / "cache" / "triton") and Path(caches["XDG_CACHE_HOME"]).is_dir()
    assert set(caches) == {
        "XDG_CACHE_HOME",
        "TRITON_CACHE_DIR",
        "TORCHINDUCTOR_CACHE_DIR",
        "WANDB_CACHE_DIR",
        "WANDB_CONFIG_DIR",
        "WANDB_DATA_DIR",
    }


def test_arrays_are_split_at_max_array_size() -> None:
    assert chunks(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert chunks(1001, 1001) == [range(0, 1001)]
    assert [len(c) for c in chunks(100_000, 1001)] == [1001] * 99 + [901]
    assert max_array_size("ClusterName = nph\nMaxArraySize            = 3\nMaxJobCount = 10000\n") == 3
    assert max_array_size("ClusterName = nph\n") == DEFAULT_MAX_ARRAY_SIZE == 1001


def test_profiles_from_configs() -> None:
    slurm = load_profile("slurm")
    assert (slurm.executor, slurm.gpus_per_task, slurm.wait, slurm.array_parallelism) == ("slurm", 1, False, 64)
    local = load_profile("local", {"timeout_min": 7})
    assert (local.executor, local.timeout_min, local.wait, local.nodes) == ("local", 7, True, 1)
    assert set(PROFILE_DEFAULTS) >= {
        "partition",
        "account",
        "qos",
        "gpus_per_task",
        "cpus_per_task",
        "mem_gb",
        "timeout_min",
        "array_parallelism",
        "additional_parameters",
        "setup",
    }


BAD_INPUTS = [
    (["phantom", "out=OUT", "cluster.partitoin=gpu"], "unknown cluster key(s) partitoin; valid keys: executor (def"),
    (["phantom", "out=OUT", "cluster=nosuch"], "no cluster profile 'nosuch' (known: "),
    (["phantom", "out=OUT", "container=OUT/missing.sif"], "missing.sif: image file not found"),
    (["phantom", "out=OUT", "shards=0"], "shards=0: must be an integer ≥ 1"),
    (["phantom", "out=OUT", "shards=two"], "shards=two: must be an integer ≥ 1"),
    (["phantom", "out=OUT", "wait=maybe"], "wait=maybe: must be true or false"),
    (["phantom", "out=OUT", "cluster.cpus_per_task=0"], "cpus_per_task must be a positive integer, got 0"),
    (["phantom", "out=OUT", "cluster.executor=pbs"], "executor must be one of local, slurm, got 'pbs'"),
    (["phantom", "out=OUT", "shards=2"], "Could not override 'shard'"),  # phantom has no shard key
    (["phantom", "out=OUT", "nn=2"], "Could not override 'nn'"),
    (["phantom", "n=2"], "no output folder to keep the job records in"),
    (["phantomx", "out=OUT"], "unknown command 'phantomx'"),
    (["phantom", "out=OUT", "seed"], "'seed': expected key=value"),
    (["status", "out=OUT"], "OUT/launch/jobs.json: no job records"),
    (["status"], "status needs out=DIR"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_damages_nothing(run_launch, tmp_path: Path, args, message) -> None:
    out = tmp_path / "o"
    (out / "launch").mkdir(parents=True)
    if args[0] != "status":
        previous = {"submissions": [{"id": "earlier", "tasks": []}]}
        (out / "launch" / "jobs.json").write_text(json.dumps(previous))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = run_launch(*[a.replace("OUT", str(out)) for a in args])
    assert result.status == 2
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("launch: error: ") and message.replace("OUT", str(out)) in line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing written or damaged


def test_bad_profile_file_is_refused(run_launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    (configs / "cluster" / "mine.yaml").write_text("executor: slurm\ngpus: 2\n")
    (configs / "cluster" / "list.yaml").write_text("- executor\n")
    monkeypatch.setenv("NPH_CONFIG_DIR", str(configs))
    result = run_launch("phantom", f"out={tmp_path}/o", "cluster=mine")
    assert result.status == 2 and f"{configs}/cluster/mine.yaml: unknown cluster key(s) gpus" in result.err
    assert "gpus_per_task (default 0)" in result.err
    result = run_launch("phantom", f"out={tmp_path}/o", "cluster=list")
    assert result.status == 2 and "a profile is a mapping of key: value, got list" in result.err
    with pytest.raises(InputError, match="mem_gb must be a positive number"):
        load_profile("slurm", {"mem_gb": -1})


def test_apptainer_missing_is_refused(run_launch, tmp_path: Path) -> None:
    image = tmp_path / "nph.sif"
    image.write_bytes(b"")
    result = run_launch(
        "phantom", f"out={tmp_path}/o", "cluster=local", f"container={image}", "apptainer=/nonexistent/apptainer"
    )
    assert result.status == 2
    assert "apptainer=/nonexistent/apptainer: not found (install Apptainer or pass apptainer=PATH)" in result.err
    assert not (tmp_path / "o").exists()


def test_launcher_never_imports_torch() -> None:
    code = (
        "import sys, launch.cli, launch.submit, launch.task, launch.records; "
        "sys.exit('torch imported' if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr


def test_generate_shards_dry_run(run_launch) -> None:
    result = run_launch(
        "generate", "models=/m", "n=100000", "out=/o", "shards=3", "cluster=slurm", "max_array_size=2", "dry_run=true"
    )
    assert result.status == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "# cluster 'slurm' (slurm); 3 task(s) in 2 array(s) of at most 2"
    assert lines[1] == "# 3 of 3 shard(s) to submit"  # no earlier submission into /o/launch
    assert lines[4].endswith("-m nph generate models=/m n=100000 out=/o shard=2/3")
    assert "#SBATCH --array=0-1%2" in lines and "#SBATCH --gres=gpu:1" in lines
    assert not Path("/o").exists()


def test_subcommand_action_goes_first(run_launch, tmp_path: Path) -> None:
    result = run_launch("nnunet", "plan", f"root={tmp_path}/nn", "dataset=501", "cluster=local", "dry_run=true")
    assert result.status == 0, result.err
    assert result.out.splitlines()[1].endswith(f"-m nph nnunet plan root={tmp_path}/nn dataset=501")
    bad = run_launch("nnunet", f"root={tmp_path}/nn", "cluster=local")
    assert bad.status == 2 and "'nnunet' needs an action first: one of export, plan, train, predict" in bad.err


def test_records_go_beside_out_even_when_models_comes_first(tmp_path) -> None:
    from launch.request import launch_folder

    folder = launch_folder(None, [f"models={tmp_path}/m", f"out={tmp_path}/o", "n=2"], tmp_path)
    assert folder == (tmp_path / "o" / "launch").resolve()
    assert launch_folder(None, [f"models={tmp_path}/m"], tmp_path) == (tmp_path / "m" / "launch").resolve()


@pytest.mark.parametrize(
    "line",
    [
        "export WANDB_API_KEY=0123abcd",
        "HF_TOKEN='s3cr3t' nph",
        "export AWS_SECRET_ACCESS_KEY=xyz",
        "DB_PASSWORD=hunter2",
    ],
)
def test_secrets_in_setup_are_refused_without_echoing_them(run_launch, tmp_path: Path, line: str) -> None:
    result = run_launch("phantom", "cluster=loopback", f"out={tmp_path}/o", f"cluster.setup=[{json.dumps(line)}]")
    assert result.status == 2 and "setup line 1 sets" in result.err and "to a literal value" in result.err
    value = line.split("=", 1)[1].split()[0].strip("'")
    assert value not in result.err and value not in result.out  # never logged
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "line", ["source ~/.nph-secrets", "export WANDB_API_KEY=$(cat ~/.wandb_key)", "module load cuda"]
)
def test_setup_that_loads_secrets_from_a_file_is_fine(line: str) -> None:
    assert load_profile("slurm", {"setup": [line]}).setup == [line]


def test_the_gpu_shape_slurm_23_11_refuses_cannot_come_in_through_additional_parameters() -> None:
    with pytest.raises(InputError, match=r"additional_parameters gpus-per-task: Slurm 23\.11 refuses"):
        load_profile("slurm", {"additional_parameters": {"gpus-per-task": 1}})
