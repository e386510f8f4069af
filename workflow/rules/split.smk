# Featurised dataset -> seeded pool / val / test split of one run. Reads molecule ids only.


rule split:
    input:
        unpack(get_dataset_graphs),
    output:
        "results/runs/{run}/split.parquet",
    log:
        "logs/split/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=get_run_dataset_dir,
        sizes=get_split_args,
    shell:
        "pipeline --threads {threads} split --data {params.data} --out {output} {params.sizes} > {log} 2>&1"
