"""The training pipeline on Kubeflow Pipelines v2 (docs/pipeline.md).

definition.py  the components and their DAG (kfp DSL); compile_pipeline
steps.py       what each component calls: the training code of workloads/training, one step per task
artifacts.py   the layouts the tasks hand each other (training set, splits, model, evaluation)
featurejob.py  the optional first step: the feature job here, or a SparkApplication in the cluster
deploy.py      the last step: the champion alias here; in the cluster also the SeldonDeployment
kube.py        the API-server calls the cluster steps make
client.py      start_run (the retraining trigger's entry), upload, run_local (kfp.local)
"""
