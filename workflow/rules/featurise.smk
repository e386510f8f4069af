# Molecules -> featurised graphs. One featurise_shard job per shard (shard count from config, so
# the DAG is static), then featurise_merge joins the per-shard parts into the dataset's answer key,
# rejects and manifest. Only featurise_merge has answer-key files among its inputs.


rule featurise_shard:
    input:
        get_molecule_files,
    output:
        graphs="results/data/{dataset}/graphs/shard-{shard}.parquet",
        answer_key="results/data/{dataset}/parts/shard-{shard}.answer_key.parquet",
        rejects="results/data/{dataset}/parts/shard-{shard}.rejects.parquet",
        summary="results/data/{dataset}/parts/shard-{shard}.json",
    log:
        "logs/featurise_shard/{dataset}/shard-{shard}.log",
    benchmark:
        "benchmarks/featurise_shard/{dataset}/shard-{shard}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=get_featurise_args,
    shell:
        "pipeline --threads {threads} featurise {params.settings} --shard {wildcards.shard}"
        " --graphs {output.graphs} --answer-key {output.answer_key} --rejects {output.rejects}"
        " --summary {output.summary} > {log} 2>&1"


rule featurise_merge:
    input:
        unpack(get_featurise_parts),
    output:
        answer_key="results/data/{dataset}/answer_key.parquet",
        rejects="results/data/{dataset}/rejects.parquet",
        manifest="results/data/{dataset}/manifest.json",
    log:
        "logs/featurise_merge/{dataset}.log",
    benchmark:
        "benchmarks/featurise_merge/{dataset}.tsv"
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
