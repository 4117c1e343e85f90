"""Airflow 2.x example: quantize a checkpoint with shardquant on a Spark cluster.

Runs `shardquant.cli.Main quantize` from shardquant.jar through spark-submit
(apache-airflow-providers-apache-spark), with the settings of conf/spark-defaults.conf.template:
Kryo, the Java 17 flags, and GPUs scheduled the spark-rapids way. Trigger it with other paths or
another recipe from the UI ("Trigger DAG w/ config") or
`airflow dags trigger shardquant_quantize --conf '{"input": "...", "output": "...", "recipe": "nf4"}'`.

The spark_default connection names the master (spark://host:7077, yarn, k8s://...). Copy this file to
the DAGs folder and set SHARDQUANT_HOME to where shardquant is installed on the Airflow worker and,
for the GPU discovery script, on every Spark node.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.models.param import Param
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

SHARDQUANT_HOME = "/opt/shardquant"

# Spark 4 and Arrow on Java 17 need these; the same list as shardquant.jvm.flags in shardquant's pom.xml.
JAVA_OPTIONS = " ".join([
    "--add-modules=jdk.incubator.vector",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "--add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
])

RECIPES = ["int4-tile-packed", "int4-cpu", "8da4w", "intx-weight-only", "int8-weight-only", "int8-dynamic", "nf4"]

with DAG(
    dag_id="shardquant_quantize",
    description="Quantize a safetensors checkpoint with shardquant on Spark",
    start_date=datetime(2025, 1, 1),
    schedule=None,  # run after training, from a trigger or a Dataset; not on a clock
    catchup=False,
    max_active_runs=1,
    default_args={
        # The job is idempotent: a rerun into the same output directory keeps every file already
        # committed for the same input and recipe and writes only the rest, so retrying a failed run
        # (or clearing the task) resumes it rather than starting over. Spark also retries single tasks
        # itself (spark.task.maxFailures); these retries cover a lost driver or cluster.
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=6),
    },
    params={
        "input": Param("s3a://models/llama-3-8b", type="string",
                       description="Input checkpoint: a .safetensors file or a directory with model.safetensors.index.json"),
        "output": Param("s3a://models/llama-3-8b-int4", type="string",
                        description="Output directory; _SUCCESS is written last"),
        # Each recipe's group size is its default (conf/recipes/); add "--group-size", "64" below to change it.
        "recipe": Param("int4-tile-packed", type="string", enum=RECIPES),
    },
    tags=["shardquant", "quantization"],
) as dag:
    quantize = SparkSubmitOperator(
        task_id="quantize",
        conn_id="spark_default",
        application=f"{SHARDQUANT_HOME}/spark-job/target/shardquant.jar",
        java_class="shardquant.cli.Main",
        name="shardquant-{{ params.recipe }}-{{ ds_nodash }}",
        application_args=[
            "quantize",
            "--input", "{{ params.input }}",
            "--output", "{{ params.output }}",
            "--recipe", "{{ params.recipe }}",
            "--backend", "auto",  # CUDA where the executor got a GPU, CPU SIMD kernels elsewhere
        ],
        executor_cores=4,
        executor_memory="8g",
        driver_memory="2g",
        conf={
            "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
            "spark.kryo.registrator": "shardquant.job.ShardquantKryoRegistrator",
            "spark.kryo.registrationRequired": "true",
            "spark.executor.memoryOverhead": "2g",  # Arrow buffers and mapped input live off-heap
            "spark.task.maxFailures": "4",
            # One GPU per executor, shared by its 4 tasks (0.25 each): IO of one task overlaps the
            # kernels of another. Remove these three on a cluster without GPUs.
            "spark.executor.resource.gpu.amount": "1",
            "spark.task.resource.gpu.amount": "0.25",
            "spark.executor.resource.gpu.discoveryScript": f"{SHARDQUANT_HOME}/conf/getGpusResources.sh",
            "spark.driver.extraJavaOptions": JAVA_OPTIONS,
            "spark.executor.extraJavaOptions": JAVA_OPTIONS,
        },
        verbose=False,
    )
