# Learning curves (test MAE against labels), per-round tables and embedding maps; all of them are
# in `snakemake --report report.html`.


rule learning_curve:
    input:
        get_learning_curve_input,
    output:
        csv="results/runs/{run}/learning_curve.csv",
        png=report(
            "results/runs/{run}/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Learning curves",
            subcategory="{run}",
        ),
    log:
        "logs/learning_curve/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        students=get_learning_curve_args,
    shell:
        "pipeline learning-curve {params.students} --title {wildcards.run}"
        " --csv {output.csv} --png {output.png} > {log} 2>&1"


rule learning_curve_all:
    input:
        get_all_students,
    output:
        csv="results/learning_curve.csv",
        png=report(
            "results/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Learning curves",
            subcategory="all runs",
        ),
    log:
        "logs/learning_curve/all.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        students=get_learning_curve_args,
    shell:
        "pipeline learning-curve {params.students} --title 'all runs' --csv {output.csv} --png {output.png}"
        " > {log} 2>&1"


rule round_table:
    input:
        unpack(get_round_table_input),
    output:
        report(
            "results/runs/{run}/rounds.csv",
            caption="../report/round_table.rst",
            category="Per-round tables",
            subcategory="{run}",
        ),
    log:
        "logs/round_table/{run}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "pipeline round-table --teacher {input.teachers} --student {input.students} --csv {output}"
        " > {log} 2>&1"


rule embedding_map:
    input:
        embeddings="results/runs/{run}/round_{round}/embeddings.parquet",
        labelled="results/runs/{run}/round_{round}/labelled.parquet",
        selected="results/runs/{run}/round_{round}/selected.parquet",
    output:
        report(
            "results/runs/{run}/round_{round}/embedding_map.png",
            caption="../report/embedding_map.rst",
            category="Embedding maps",
            subcategory="{run}",
            labels={"run": "{run}", "round": "{round}"},
        ),
    log:
        "logs/embedding_map/{run}/round_{round}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "pipeline embedding-map --embeddings {input.embeddings} --labelled {input.labelled}"
        " --selected {input.selected} --png {output} > {log} 2>&1"


rule benchmark_table:
    input:
        unpack(get_benchmark_input),
    output:
        csv="results/benchmark/{benchmark}/table.csv",
        markdown="results/benchmark/{benchmark}/table.md",
        paired="results/benchmark/{benchmark}/paired.csv",
        efficiency="results/benchmark/{benchmark}/efficiency.csv",
        png=report(
            "results/benchmark/{benchmark}/figure.png",
            caption="../report/learning_curve.rst",
            category="Benchmark",
            subcategory="{benchmark}",
        ),
    log:
        "logs/benchmark_table/{benchmark}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        args=get_benchmark_args,
    shell:
        "pipeline benchmark-table {params.args} --csv {output.csv} --markdown {output.markdown}"
        " --paired-csv {output.paired} --efficiency-csv {output.efficiency} --png {output.png} > {log} 2>&1"
