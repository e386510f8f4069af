# Learning curves (test MAE against labels), per-round tables and embedding maps; all of them are
# in `snakemake --report report.html`.


rule learning_curve:
    input:
        plan("students", "run"),
    output:
        csv=PATHS.learning_curve_csv,
        png=report(
            PATHS.learning_curve_png,
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
        students=lambda w, input: shlex.join(PLAN.learning_curve_args(w.run)),
    shell:
        "pipeline learning-curve {params.students} --title {wildcards.run}"
        " --csv {output.csv} --png {output.png} > {log} 2>&1"


rule learning_curve_all:
    input:
        PLAN.all_students(),
    output:
        csv=PATHS.learning_curve_all_csv,
        png=report(
            PATHS.learning_curve_all_png,
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
        students=lambda w, input: shlex.join(PLAN.learning_curve_args()),
    shell:
        "pipeline learning-curve {params.students} --title 'all runs' --csv {output.csv} --png {output.png}"
        " > {log} 2>&1"


rule round_table:
    input:
        unpack(plan("round_table_input", "run")),
    output:
        report(
            PATHS.round_table,
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
        embeddings=rules.embed.output.out,
        labelled=rules.label.output.labels,
        selected=rules.select.output.out,
    output:
        report(
            PATHS.embedding_map,
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
        unpack(plan("benchmark_input", "benchmark")),
    output:
        csv=PATHS.benchmark_table,
        markdown=PATHS.benchmark_markdown,
        paired=PATHS.benchmark_paired,
        efficiency=PATHS.benchmark_efficiency,
        png=report(
            PATHS.benchmark_figure,
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
        curves_runs_baseline=lambda w, input: shlex.join(PLAN.benchmark_args(w.benchmark, input)),
    shell:
        "pipeline benchmark-table {params.curves_runs_baseline} --csv {output.csv} --markdown {output.markdown}"
        " --paired-csv {output.paired} --efficiency-csv {output.efficiency} --png {output.png} > {log} 2>&1"
