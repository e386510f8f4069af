# Featurised dataset -> seeded pool / val / test split of one run. Reads molecule ids only.


rule split:
    input:
        unpack(plan("dataset_graphs", "run")),
    output:
        PATHS.split,
    log:
        "logs/split/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=plan("data_dir", "run"),
        split_options=plan_args("split_args", "run"),
    shell:
        "pipeline --threads {threads} split --data {params.data} --out {output} {params.split_options}"
        " > {log} 2>&1"
