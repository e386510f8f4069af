# Active-learning rounds of every run (ASGN, Hao et al. 2020). Round r:
#   label -> teacher -> embed -> student -> pseudo_label -> select  (-> label of round r+1)
# The number of rounds comes from config, so the DAG is static and a killed run resumes where it
# stopped. Only the label rules have the answer key among their inputs. With the external oracle,
# a labels file a person filled in (round_{r}/labels.csv, holdout_labels.csv) is an input of its
# label rule once it exists, and its checksum a param: correcting it relabels and redoes what follows.
# The per-round stages (initial, teacher, embed, student, pseudo_label, select, share_round_0) take
# their inputs and command line from their declarations (pipeline.plan.commands): stage_input and
# stage_options.


rule run_config:
    output:
        PATHS.run_json,
    log:
        "logs/run_config/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        settings=plan("run_config_json", "run"),
    shell:
        "pipeline run-config --json {params.settings:q} --out {output} > {log} 2>&1"


rule initial:
    input:
        unpack(stage_input("initial")),
    output:
        out=PATHS.initial,
    log:
        "logs/initial/{run}.log",
    benchmark:
        "logs/timings/initial/{run}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=plan("initial_gpus", "run"),
        mem_mb=8000,
        runtime=30,
    params:
        options=stage_options("initial"),
    shell:
        "pipeline --threads {threads} initial {params.options} > {log} 2>&1"


rule label_holdout:
    input:
        unpack(plan("holdout_input", "run")),
    output:
        labels=PATHS.holdout_labels,
        failures=PATHS.holdout_failures,
    log:
        "logs/label_holdout/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        oracle=plan_args_of_input("holdout_args", "run"),
        checksum=plan_args("labels_checksum", "run", "round"),
    shell:
        "pipeline --threads {threads} label-holdout --split-path {input.split} {params.oracle}"
        " {params.checksum} --out {output.labels} --failures {output.failures} > {log} 2>&1"


rule label:
    input:
        unpack(plan("label_input", "run", "round")),
    output:
        labels=PATHS.labelled,
        failures=PATHS.label_failures,
    log:
        "logs/label/{run}/round_{round}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        oracle=plan_args_of_input("label_args", "run", "round"),
        checksum=plan_args("labels_checksum", "run", "round"),
    shell:
        "pipeline --threads {threads} label --selected {input.selected} --round {wildcards.round}"
        " {params.oracle} {params.checksum} --out {output.labels} --failures {output.failures} > {log} 2>&1"


# Quantum-chemistry oracles (pyscf, xtb): one job per chunk of the molecules to label. The shell
# command is shared by the per-round and the val/test chunks.
LABEL_CHUNK_SHELL = (
    "OMP_NUM_THREADS={threads} pipeline --threads {threads} label-chunk --data {params.data}"
    " --request {input.request} {params.holdout_flag} {params.oracle} --out {output.labels}"
    " --failures {output.failures} > {log} 2>&1"
)


rule label_chunk:
    input:
        unpack(plan("dataset_graphs", "run")),
        request=plan("label_request", "run", "round"),
    output:
        labels=PATHS.label_chunk,
        failures=PATHS.label_chunk_failures,
    log:
        "logs/label_chunk/{run}/round_{round}/chunk-{chunk}.log",
    benchmark:
        "logs/timings/label_chunk/{run}/round_{round}/chunk-{chunk}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: oracle_job("threads")
    resources:
        mem_mb=oracle_job("mem_mb"),
        runtime=oracle_job("runtime"),
        gpu=oracle_job("gpu"),
    params:
        data=plan("data_dir", "run"),
        holdout_flag="",
        oracle=lambda w, threads: shlex.join(PLAN.label_chunk_args(w.run, w.chunk, threads)),
    shell:
        LABEL_CHUNK_SHELL


rule holdout_chunk:
    input:
        unpack(plan("dataset_graphs", "run")),
        request=PATHS.split,
    output:
        labels=PATHS.holdout_chunk,
        failures=PATHS.holdout_chunk_failures,
    log:
        "logs/holdout_chunk/{run}/chunk-{chunk}.log",
    benchmark:
        "logs/timings/holdout_chunk/{run}/chunk-{chunk}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: oracle_job("threads")
    resources:
        mem_mb=oracle_job("mem_mb"),
        runtime=oracle_job("runtime"),
        gpu=oracle_job("gpu"),
    params:
        data=plan("data_dir", "run"),
        holdout_flag="--holdout",
        oracle=lambda w, threads: shlex.join(PLAN.label_chunk_args(w.run, w.chunk, threads)),
    shell:
        LABEL_CHUNK_SHELL


# Helping properties (run key helpers): a computing oracle (xtb, ani1x, ani1ccx) computes them for
# every molecule of the dataset, once, in helper_chunks jobs; each run's helpers job keeps its pool's
# (or reads them from the answer key, for helpers.source dataset: never the run's targets), and its
# teachers learn them.
rule helper_chunk:
    input:
        unpack(plan("dataset_files", "dataset")),
    output:
        labels=PATHS.helper_chunk,
        failures=PATHS.helper_chunk_failures,
    log:
        "logs/helper_chunk/{dataset}/{source}/chunk-{chunk}.log",
    benchmark:
        "logs/timings/helper_chunk/{dataset}/{source}/chunk-{chunk}.tsv"
    wildcard_constraints:
        source="|".join(COMPUTING_ORACLES),
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        oracle=plan_args("helper_chunk_args", "dataset", "source", "chunk"),
    shell:
        "OMP_NUM_THREADS={threads} pipeline --threads {threads} label-chunk {params.oracle}"
        " --out {output.labels} --failures {output.failures} > {log} 2>&1"


rule helpers:
    input:
        unpack(plan("helper_input", "run")),
    output:
        PATHS.helpers,
    log:
        "logs/helpers/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        helper_files=lambda w, input: shlex.join(PLAN.helper_args(input)),
    shell:
        "pipeline --threads {threads} helpers --run-json {input.run_json} --split-path {input.split}"
        " {params.helper_files} --out {output} > {log} 2>&1"


# Delta learning (run key delta): the cheap method's value of each delta target for every pool, val
# and test molecule, from the dataset's helper chunks (the same jobs as the helpers').
rule baseline:
    input:
        unpack(plan("baseline_input", "run")),
    output:
        PATHS.baseline,
    log:
        "logs/baseline/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        helper_files=lambda w, input: shlex.join(PLAN.helper_args(input)),
    shell:
        "pipeline --threads {threads} baseline --run-json {input.run_json} --split-path {input.split}"
        " {params.helper_files} --out {output} > {log} 2>&1"


rule teacher:
    input:
        unpack(stage_input("teacher")),
    output:
        out=PATHS.teacher,
        summary=PATHS.teacher_json,
    log:
        "logs/teacher/{run}/round_{round}.log",
    benchmark:
        "logs/timings/teacher/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    params:
        options=stage_options("teacher"),
    shell:
        "pipeline --threads {threads} teacher {params.options} > {log} 2>&1"


rule embed:
    input:
        unpack(stage_input("embed")),
    output:
        out=PATHS.embeddings,
    log:
        "logs/embed/{run}/round_{round}.log",
    benchmark:
        "logs/timings/embed/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        options=stage_options("embed"),
    shell:
        "pipeline --threads {threads} embed {params.options} > {log} 2>&1"


rule student:
    input:
        unpack(stage_input("student")),
    output:
        out=PATHS.student,
        summary=PATHS.student_json,
        predictions=PATHS.predictions,
    log:
        "logs/student/{run}/round_{round}.log",
    benchmark:
        "logs/timings/student/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=plan("student_gpus", "run"),
        mem_mb=16000,
        runtime=240,
    params:
        options=stage_options("student"),
    shell:
        "pipeline --threads {threads} student {params.options} > {log} 2>&1"


rule pseudo_label:
    input:
        unpack(stage_input("pseudo-label")),
    output:
        out=PATHS.pseudo_labels,
    log:
        "logs/pseudo_label/{run}/round_{round}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=plan("student_gpus", "run"),
        mem_mb=16000,
        runtime=30,
    params:
        options=stage_options("pseudo-label"),
    shell:
        "pipeline --threads {threads} pseudo-label {params.options} > {log} 2>&1"


rule select:
    input:
        unpack(stage_input("select")),
    output:
        out=PATHS.selected,
    log:
        "logs/select/{run}/round_{round}.log",
    benchmark:
        "logs/timings/select/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=plan("select_gpus", "run"),
        mem_mb=8000,
        runtime=60,
    params:
        options=stage_options("select"),
    shell:
        "pipeline --threads {threads} select {params.options} > {log} 2>&1"


# A benchmark's runs that differ from an earlier method's only in what round 0 does not read (the
# strategy, batch, rounds: pipeline.config.settings.round_0_sources) copy its round 0 instead of
# training it again; their select job of round 0 is their own. The rule order makes the copy win over
# the rules that would compute those files; the run wildcard admits only the sharing runs.
rule share_round_0:
    input:
        unpack(stage_input("share-round-0")),
    output:
        [PATHS.of(name, run="{run}", round="00") for name in ROUND_0_SHARED],
    log:
        "logs/share_round_0/{run}.log",
    wildcard_constraints:
        run=PLAN.sharing_runs(),
    conda:
        "../../envs/pipeline.yaml"
    params:
        options=stage_options("share-round-0"),
    shell:
        "pipeline share-round-0 {params.options} > {log} 2>&1"


ruleorder: share_round_0 > label
ruleorder: share_round_0 > teacher
ruleorder: share_round_0 > embed
ruleorder: share_round_0 > student
ruleorder: share_round_0 > pseudo_label
