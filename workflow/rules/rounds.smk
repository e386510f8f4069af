# Active-learning rounds of every run (ASGN, Hao et al. 2020). Round r:
#   label -> teacher -> embed -> student -> pseudo_label -> select  (-> label of round r+1)
# The number of rounds comes from config, so the DAG is static and a killed run resumes where it
# stopped. Only the label rules have the answer key among their inputs. With the external oracle,
# a labels file a person filled in (round_{r}/labels.csv, holdout_labels.csv) is an input of its
# label rule once it exists, and its checksum a param: correcting it relabels and redoes what follows.


rule run_config:
    output:
        "results/runs/{run}/run.json",
    log:
        "logs/run_config/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        settings=get_run_config_json,
    shell:
        "pipeline run-config --json {params.settings:q} --out {output} > {log} 2>&1"


rule initial:
    input:
        unpack(get_dataset_graphs),
        run_json="results/runs/{run}/run.json",
        split="results/runs/{run}/split.parquet",
    output:
        "results/runs/{run}/initial.parquet",
    log:
        "logs/initial/{run}.log",
    benchmark:
        "benchmarks/initial/{run}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=get_initial_gpu,
        mem_mb=8000,
        runtime=30,
    params:
        data=get_run_dataset_dir,
    shell:
        "pipeline --threads {threads} initial --run-json {input.run_json} --data {params.data}"
        " --split-path {input.split} --out {output} > {log} 2>&1"


rule label_holdout:
    input:
        unpack(get_holdout_input),
    output:
        labels="results/runs/{run}/holdout_labels.parquet",
        failures="results/runs/{run}/holdout_failures.parquet",
    log:
        "logs/label_holdout/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        oracle=get_holdout_args,
        checksum=get_labels_checksum,
    shell:
        "pipeline --threads {threads} label-holdout --split-path {input.split} {params.oracle}"
        " {params.checksum} --out {output.labels} --failures {output.failures} > {log} 2>&1"


rule label:
    input:
        unpack(get_label_input),
    output:
        labels="results/runs/{run}/round_{round}/labelled.parquet",
        failures="results/runs/{run}/round_{round}/label_failures.parquet",
    log:
        "logs/label/{run}/round_{round}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        oracle=get_label_args,
        checksum=get_labels_checksum,
    shell:
        "pipeline --threads {threads} label --selected {input.selected} --round {wildcards.round}"
        " {params.oracle} {params.checksum} --out {output.labels} --failures {output.failures} > {log} 2>&1"


# Quantum-chemistry oracles (pyscf, xtb): one job per chunk of the molecules to label. The shell
# command is shared by the per-round and the val/test chunks.
LABEL_CHUNK_SHELL = (
    "OMP_NUM_THREADS={threads} pipeline --threads {threads} label-chunk --data {params.data}"
    " --request {input.request} {params.request} {params.oracle} --out {output.labels}"
    " --failures {output.failures} > {log} 2>&1"
)


rule label_chunk:
    input:
        unpack(get_dataset_graphs),
        request=get_label_request,
    output:
        labels="results/runs/{run}/round_{round}/label_parts/chunk-{chunk}.parquet",
        failures="results/runs/{run}/round_{round}/label_parts/chunk-{chunk}.failures.parquet",
    log:
        "logs/label_chunk/{run}/round_{round}/chunk-{chunk}.log",
    benchmark:
        "benchmarks/label_chunk/{run}/round_{round}/chunk-{chunk}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: get_oracle_threads
    resources:
        mem_mb=get_oracle_mem_mb,
        runtime=get_oracle_runtime,
        gpu=get_oracle_gpu,
    params:
        data=get_run_dataset_dir,
        request="",
        oracle=get_label_chunk_args,
    shell:
        LABEL_CHUNK_SHELL


rule holdout_chunk:
    input:
        unpack(get_dataset_graphs),
        request="results/runs/{run}/split.parquet",
    output:
        labels="results/runs/{run}/holdout_parts/chunk-{chunk}.parquet",
        failures="results/runs/{run}/holdout_parts/chunk-{chunk}.failures.parquet",
    log:
        "logs/holdout_chunk/{run}/chunk-{chunk}.log",
    benchmark:
        "benchmarks/holdout_chunk/{run}/chunk-{chunk}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: get_oracle_threads
    resources:
        mem_mb=get_oracle_mem_mb,
        runtime=get_oracle_runtime,
        gpu=get_oracle_gpu,
    params:
        data=get_run_dataset_dir,
        request="--holdout",
        oracle=get_label_chunk_args,
    shell:
        LABEL_CHUNK_SHELL


# Helping properties (run key helpers): xtb computes them for every molecule of the dataset, once,
# in helper_chunks jobs; each run's helpers job keeps its pool's (or reads them from the answer key,
# for helpers.source dataset: never the run's targets), and its teachers learn them.
rule helper_chunk:
    input:
        unpack(get_helper_chunk_dataset),
    output:
        labels="results/data/{dataset}/helpers/{source}/chunk-{chunk}.parquet",
        failures="results/data/{dataset}/helpers/{source}/chunk-{chunk}.failures.parquet",
    log:
        "logs/helper_chunk/{dataset}/{source}/chunk-{chunk}.log",
    benchmark:
        "benchmarks/helper_chunk/{dataset}/{source}/chunk-{chunk}.tsv"
    wildcard_constraints:
        source="xtb",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        oracle=get_helper_chunk_args,
    shell:
        "OMP_NUM_THREADS={threads} pipeline --threads {threads} label-chunk {params.oracle}"
        " --out {output.labels} --failures {output.failures} > {log} 2>&1"


rule helpers:
    input:
        unpack(get_helper_input),
    output:
        "results/runs/{run}/helpers.parquet",
    log:
        "logs/helpers/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        sources=get_helper_args,
    shell:
        "pipeline --threads {threads} helpers --run-json {input.run_json} --split-path {input.split}"
        " {params.sources} --out {output} > {log} 2>&1"


rule teacher:
    input:
        unpack(get_teacher_input),
    output:
        checkpoint="results/runs/{run}/round_{round}/teacher.pt",
        summary="results/runs/{run}/round_{round}/teacher.json",
    log:
        "logs/teacher/{run}/round_{round}.log",
    benchmark:
        "benchmarks/teacher/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    params:
        data=get_run_dataset_dir,
        warm_start=get_teacher_args,
    shell:
        "pipeline --threads {threads} teacher --run-json {input.run_json} --data {params.data}"
        " --split-path {input.split} --labelled-path {input.labelled} --round {wildcards.round}"
        " {params.warm_start} --out {output.checkpoint} --summary {output.summary} > {log} 2>&1"


rule embed:
    input:
        unpack(get_dataset_graphs),
        run_json="results/runs/{run}/run.json",
        split="results/runs/{run}/split.parquet",
        checkpoint="results/runs/{run}/round_{round}/teacher.pt",
    output:
        "results/runs/{run}/round_{round}/embeddings.parquet",
    log:
        "logs/embed/{run}/round_{round}.log",
    benchmark:
        "benchmarks/embed/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        data=get_run_dataset_dir,
    shell:
        "pipeline --threads {threads} embed --run-json {input.run_json} --data {params.data}"
        " --split-path {input.split} --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"


rule student:
    input:
        unpack(get_dataset_graphs),
        run_json="results/runs/{run}/run.json",
        split="results/runs/{run}/split.parquet",
        labelled="results/runs/{run}/round_{round}/labelled.parquet",
        holdout="results/runs/{run}/holdout_labels.parquet",
        teacher="results/runs/{run}/round_{round}/teacher.pt",
    output:
        checkpoint="results/runs/{run}/round_{round}/student.pt",
        summary="results/runs/{run}/round_{round}/student.json",
    log:
        "logs/student/{run}/round_{round}.log",
    benchmark:
        "benchmarks/student/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    params:
        data=get_run_dataset_dir,
    shell:
        "pipeline --threads {threads} student --run-json {input.run_json} --data {params.data}"
        " --split-path {input.split} --labelled-path {input.labelled} --holdout-path {input.holdout}"
        " --teacher-path {input.teacher} --round {wildcards.round} --out {output.checkpoint}"
        " --summary {output.summary} > {log} 2>&1"


rule pseudo_label:
    input:
        unpack(get_dataset_graphs),
        run_json="results/runs/{run}/run.json",
        split="results/runs/{run}/split.parquet",
        labelled="results/runs/{run}/round_{round}/labelled.parquet",
        checkpoint="results/runs/{run}/round_{round}/student.pt",
    output:
        "results/runs/{run}/round_{round}/pseudo_labels.parquet",
    log:
        "logs/pseudo_label/{run}/round_{round}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        data=get_run_dataset_dir,
    shell:
        "pipeline --threads {threads} pseudo-label --run-json {input.run_json} --data {params.data}"
        " --split-path {input.split} --labelled-path {input.labelled} --checkpoint {input.checkpoint}"
        " --out {output} > {log} 2>&1"


rule select:
    input:
        unpack(get_select_input),
    output:
        "results/runs/{run}/round_{round}/selected.parquet",
    log:
        "logs/select/{run}/round_{round}.log",
    benchmark:
        "benchmarks/select/{run}/round_{round}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        gpu=get_select_gpu,
        mem_mb=8000,
        runtime=60,
    params:
        uncertainty=get_select_args,
    shell:
        "pipeline --threads {threads} select --run-json {input.run_json} --embeddings {input.embeddings}"
        " --labelled-path {input.labelled} --round {wildcards.round} {params.uncertainty} --out {output}"
        " > {log} 2>&1"


# A benchmark's runs that differ from an earlier method's only in what round 0 does not read (the
# strategy, batch, rounds: pipeline.config.settings.round_0_sources) copy its round 0 instead of training
# it again; their select job of round 0 is their own. The rule order makes the copy win over the
# rules that would compute those files; the run wildcard admits only the sharing runs.
rule share_round_0:
    input:
        unpack(get_share_input),
    output:
        [f"results/runs/{{run}}/round_00/{name}" for name in ROUND_0_COPIED],
    log:
        "logs/share_round_0/{run}.log",
    wildcard_constraints:
        run=PLAN.sharing_runs(),
    conda:
        "../../envs/pipeline.yaml"
    params:
        rounds=get_share_args,
    shell:
        "pipeline share-round-0 --run-json {input.run_json} --source-run-json {input.source_run_json}"
        " --split-path {input.split} --source-split {input.source_split} --initial {input.initial}"
        " --source-initial {input.source_initial} {params.rounds}"
        " > {log} 2>&1"


ruleorder: share_round_0 > label
ruleorder: share_round_0 > teacher
ruleorder: share_round_0 > embed
ruleorder: share_round_0 > student
ruleorder: share_round_0 > pseudo_label
