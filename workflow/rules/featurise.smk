# Molecules -> featurised graphs. One featurise_shard job per shard (shard count from config, so
# the DAG is static), then featurise_merge joins the per-shard parts into the dataset's answer key,
# rejects and manifest. Only featurise_merge has answer-key files among its inputs.


rule featurise_shard:
    input:
        plan("molecule_files", "dataset"),
    output:
        graphs=PATHS.graph_shard,
        answer_key=PATHS.answer_key_part,
        rejects=PATHS.rejects_part,
        summary=PATHS.shard_summary,
    log:
        "logs/featurise_shard/{dataset}/shard-{shard}.log",
    benchmark:
        "logs/timings/featurise_shard/{dataset}/shard-{shard}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=plan_args("featurise_args", "dataset"),
    shell:
        "pipeline --threads {threads} featurise {params.settings} --shard {wildcards.shard}"
        " --graphs {output.graphs} --answer-key {output.answer_key} --rejects {output.rejects}"
        " --summary {output.summary} > {log} 2>&1"


rule featurise_merge:
    input:
        unpack(plan("featurise_parts", "dataset")),
    output:
        answer_key=PATHS.answer_key,
        rejects=PATHS.rejects,
        manifest=PATHS.manifest,
    log:
        "logs/featurise_merge/{dataset}.log",
    benchmark:
        "logs/timings/featurise_merge/{dataset}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    shell:
        "pipeline --threads {threads} featurise-merge --shard-graphs {input.graphs}"
        " --shard-answer-keys {input.answer_keys} --shard-rejects {input.rejects}"
        " --shard-summaries {input.summaries} --answer-key {output.answer_key}"
        " --rejects {output.rejects} --manifest {output.manifest} > {log} 2>&1"
