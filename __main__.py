"""mlplatform: reads the stack settings, wires the components together and exports the stack outputs."""

import dataclasses
from typing import cast

import pulumi
import pulumi_aws as aws

from components import outputs
from components.batch import BatchTransform
from components.cost import CostGuard, CostGuardArgs
from components.endpoint import CAPTURE_PREFIX, VARIANT_NAME, ModelEndpoint
from components.endpoint_live import read_live_endpoint
from components.image_promotion import PromotedImage, RepositoryPullGrant
from components.images import ContainerImage, unchanged_image_ref
from components.kubernetes import KubernetesModelService, kubeconfig_text
from components.model_source import resolve_model_artifacts
from components.monitoring import (
    DriftMonitor,
    DriftMonitorArgs,
    bias_schedule_name_for,
    quality_schedule_name_for,
    schedule_name_for,
)
from components.observability import EndpointObservability, EndpointObservabilityArgs, alarm_name
from components.pipeline import TrainingPipeline, TrainingPipelineArgs
from components.policy_context import PolicyContext
from components.promotion import PromotedModelFiles
from components.registry import ModelRegistry
from components.registry_source import SageMakerReader
from components.settings import load_from_pulumi
from components.storage import ArtifactStore
from components.tracking import ExperimentTracking
from components.training import ModelTraining
from training.instance_facts import hyperparameters_for

settings = load_from_pulumi()
name = f"mlplatform-{settings.stack}"
endpoint_name = name  # stable across rollouts: applications, alarms and the dashboard use it

# One explicit provider carries the region and the default tags, so every resource is tagged the same way.
provider = aws.Provider(
    "aws",
    region=settings.project.region,
    default_tags={
        "tags": {
            "project": "mlplatform",
            "stack": settings.stack,
            "environment": settings.project.environment,
            "owner": settings.project.owner,
            "managed-by": "pulumi",
        }
    },
)
opts = pulumi.ResourceOptions(providers=[provider])

# The policy pack (policy/) reads the environment, allowed GPU types and written exceptions from here.
PolicyContext(
    f"{name}-policy",
    {
        "environment": settings.project.environment,
        "allowed_gpu_instance_types": settings.policy.allowed_gpu_instance_types,
        "exceptions": settings.policy.exceptions,
    },
)

store = ArtifactStore(
    name,
    {
        "capture_retention_days": settings.storage.capture_retention_days,
        "noncurrent_version_days": settings.storage.noncurrent_version_days,
        "force_destroy": settings.storage.force_destroy,
        "promotion_reader_accounts": settings.storage.promotion_reader_accounts,
        "protect": settings.project.protect,
    },
    opts=opts,
)

# This stack's own last outputs (a StackReference to itself reads the previous update's outputs): images whose
# content did not change keep the digest the stack used last time, and the endpoint refuses an instance-type
# change while autoscaling is attached, which AWS would block mid-update.
previous = pulumi.StackReference(
    f"{name}-previous",
    stack_name=f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{pulumi.get_stack()}",
    opts=opts,
)
previous_builds = previous.get_output(outputs.IMAGE_BUILDS)
image_builds: dict[str, pulumi.Output[dict[str, str]]] = {}


def image_in_use(role: str, image: ContainerImage) -> pulumi.Output[str]:
    """The digest this stack deploys for `role`: last update's if the image's content is unchanged (a rebuild
    for a new label or provider version computes the same thing: no retraining, no rollout), else the new one.
    Recorded in the `imageBuilds` output for the next update."""
    if image.content_hash is None:
        return image.image_ref
    content = image.content_hash
    ref = previous_builds.apply(lambda prior: unchanged_image_ref(prior, role, content) or image.image_ref)
    image_builds[role] = ref.apply(lambda r: {"contentHash": content, "ref": r})
    return ref


_images: dict[str, ContainerImage] = {}


def container_image(role: str, prebuilt: str | None) -> ContainerImage:
    """`<role>/Dockerfile` built into its own ECR repository, or the given prebuilt image by digest (one per role,
    shared by whatever needs it: the training job and the training pipeline use the same image)."""
    if role in _images:
        return _images[role]
    _images[role] = ContainerImage(
        f"{name}-{role}",
        {
            "dockerfile": f"{role}/Dockerfile",
            "kms_key_arn": store.kms_key_arn,
            "keep_last": settings.images.keep_last,
            "protect": settings.project.protect,
            "prebuilt_ref": prebuilt,  # settings require one per image when imagesBuild is false
            "source_url": settings.images.source_url,
        },
        opts=opts,
    )
    return _images[role]


# --- the model: trained here (dev), or promoted from another stack or pinned values (prod) ---------------
training = None
serving_image = None
if settings.model.source == "train":
    training_image = container_image("training", settings.images.training)
    serving_image = container_image("serving", settings.images.serving)
    t = settings.training
    # What the quality and bias monitors compare with is written by the training run (baseline/model_quality,
    # baseline/model_bias): it needs the positive class and the sensitive feature the monitors use.
    monitoring_hyperparameters = (
        {
            "positive_label": settings.monitoring.positive_label,
            **(
                {"sensitive_feature": settings.monitoring.sensitive_attribute}
                if settings.monitoring.sensitive_attribute
                else {}
            ),
        }
        if settings.monitoring.quality
        else {}
    )
    # The monitors' problem type is the model's task: a Regression stack trains a regression model (the training
    # container's `task` hyperparameter; the default, auto, detects it from the target column).
    task_hyperparameters = {"task": "regression"} if settings.monitoring.problem_type == "Regression" else {}
    training = ModelTraining(
        f"{name}-train",
        {
            "image_ref": image_in_use("training", training_image),
            "image_repository_arn": training_image.repository_arn,
            "data_bucket": store.data_bucket,
            "model_bucket": store.model_bucket,
            "kms_key_arn": store.kms_key_arn,
            "instance_type": t.instance_type,
            "instance_count": t.instance_count,
            "volume_size_gb": t.volume_size_gb,
            "max_runtime_seconds": t.max_runtime_seconds,
            "spot": t.spot,
            "max_wait_seconds": t.max_wait_seconds,
            # The device that fits the instance type (so a GPU job never trains on the CPU); the stack's own
            # hyperparameters win where they set the same key.
            "hyperparameters": {
                **hyperparameters_for(t.layout),
                **monitoring_hyperparameters,
                **task_hyperparameters,
                **t.hyperparameters,
            },
            "train_prefix": t.train_prefix,
            "validation_prefix": t.validation_prefix,
            "subnet_ids": t.subnet_ids,
            "security_group_ids": t.security_group_ids,
            "run_id": t.run_id,
            "inter_container_encryption": t.inter_container_encryption,
        },
        opts=opts,
    )
    pulumi.export(outputs.TRAINING_JOB_NAME, training.training_job_name)
    pulumi.export(outputs.EDGE_BUNDLE_URI, training.edge_bundle_uri)
    if settings.storage.promotion_reader_accounts and serving_image.repository_url is not None:
        # Cross-account promotion: the promoting accounts copy the serving image from here.
        RepositoryPullGrant(
            f"{name}-serving-pull-grant",
            {
                "repository_url": serving_image.repository_url,
                "reader_accounts": settings.storage.promotion_reader_accounts,
            },
            opts=opts,
        )

registry_reader: SageMakerReader | None = None
if settings.model.source == "registry":
    import boto3  # the registry has no pulumi-aws data source: read it once, here (components/registry_source.py)

    registry_reader = cast(SageMakerReader, boto3.client("sagemaker", region_name=settings.project.region))
model = resolve_model_artifacts(
    name,
    settings.model,
    training=training,
    serving_image=image_in_use("serving", serving_image) if serving_image else None,
    opts=opts,
    registry=registry_reader,
)
promoted_keys = [model.source_kms_key_arn] if model.source_kms_key_arn is not None else []
serves_sagemaker = settings.serving.target in ("sagemaker", "both")
# What the SageMaker endpoint serves: with a promoted model, this stack's own copies of it (the Kubernetes target
# keeps the source's artifacts: its pods pull and read with the cluster's identities, docs/kubernetes.md).
served = model
if serves_sagemaker and settings.model.source != "train" and settings.model.copy_artifacts:
    # Prod owns what it serves: the promoted files are copied into its own bucket (kept for every version).
    promoted = PromotedModelFiles(
        f"{name}-promoted",
        {
            "model_data_uri": model.model_data_uri,
            "baseline_statistics_uri": model.baseline_statistics_uri,
            "baseline_constraints_uri": model.baseline_constraints_uri,
            "bucket": store.model_bucket,
            "kms_key_arn": store.kms_key_arn,
        },
        opts=opts,
    )
    # ... and the serving image, same digest, into a repository of its own that never expires promoted images.
    promoted_image = PromotedImage(
        f"{name}-serving-promoted",
        {
            "source_image": model.serving_image,
            "repository_name": f"{name}-serving-promoted",
            "kms_key_arn": store.kms_key_arn,
            "protect": settings.project.protect,
        },
        opts=opts,
    )
    served = dataclasses.replace(
        model,
        serving_image=promoted_image.image_ref,
        model_data_uri=promoted.model_data_uri,
        baseline_statistics_uri=promoted.baseline_statistics_uri,
        baseline_constraints_uri=promoted.baseline_constraints_uri,
    )

# --- Kubernetes serving target ----------------------------------------------------------------------------
# The same serving image on an existing cluster (docs/kubernetes.md), beside or instead of the SageMaker endpoint.
alarm_topic_arn: pulumi.Output[str] | None = None  # the SageMaker endpoint's alarm topic, when there is one
if settings.serving.target in ("kubernetes", "both"):
    k8s_settings = settings.kubernetes
    if k8s_settings.kubeconfig is not None:
        kubeconfig: pulumi.Input[str] = pulumi.Output.secret(k8s_settings.kubeconfig)
    else:
        # Settings require one of the two; an EKS stack usually exports its kubeconfig as a secret output.
        cluster = pulumi.StackReference(f"{name}-cluster", stack_name=k8s_settings.kubeconfig_stack, opts=opts)
        kubeconfig = cluster.get_output(k8s_settings.kubeconfig_output).apply(
            lambda value: kubeconfig_text(value, k8s_settings.kubeconfig_stack, k8s_settings.kubeconfig_output)
        )
    kubernetes_service = KubernetesModelService(
        f"{name}-k8s",
        {
            "settings": k8s_settings,
            "namespace": k8s_settings.namespace_for(settings.stack),
            "kubeconfig": kubeconfig,
            "image": model.serving_image,
            "model_data_uri": model.model_data_uri,
            "precision": settings.endpoint.precision,
            "region": settings.project.region,
            "kms_key_arns": [store.kms_key_arn, *promoted_keys],
            "protect": settings.project.protect,
        },
        opts=opts,
    )
    # The Kubernetes part of the output contract (components/outputs.py KUBERNETES_OUTPUTS).
    pulumi.export(outputs.KUBERNETES_NAMESPACE, kubernetes_service.namespace)
    pulumi.export(outputs.KUBERNETES_SERVICE_URL, kubernetes_service.service_url)
    pulumi.export(outputs.KUBERNETES_STABLE_IMAGE, kubernetes_service.stable_image)
    if settings.kubernetes.has_canary:
        pulumi.export(outputs.KUBERNETES_CANARY_IMAGE, kubernetes_service.canary_image)
    if settings.kubernetes.model_delivery == "s3":
        pulumi.export(outputs.KUBERNETES_MODEL_ROLE_ARN, kubernetes_service.model_role_arn)
# --- end of the Kubernetes serving target -----------------------------------------------------------------

# The SageMaker endpoint, its alarms and dashboard, and the drift monitor over its captured data.
if serves_sagemaker:
    # --- alarms, topic and dashboard first: the endpoint's rollback alarms notify the same topic ------------
    backend = settings.monitoring.backend
    observability_args: EndpointObservabilityArgs = {
        "endpoint_name": endpoint_name,
        "variant_name": VARIANT_NAME,
        "instance_type": settings.endpoint.instance_type,
        "region": settings.project.region,
        "alarms": settings.alarms,
        "monitor_backend": backend,
        "idle_alarm": settings.is_prod,  # a dev endpoint is often idle for hours; silence is only alarming in prod
    }
    if backend != "none":
        observability_args["monitor_schedule_name"] = schedule_name_for(endpoint_name)
    if backend == "pipeline":
        observability_args["monitor_pipeline_name"] = schedule_name_for(endpoint_name)
    if backend != "none" and settings.monitoring.quality:
        # Model quality and bias alarms and widgets (the names are the DriftMonitor's, derived from the endpoint).
        observability_args["quality"] = settings.monitoring
        observability_args["quality_schedule_name"] = quality_schedule_name_for(endpoint_name)
        observability_args["bias_schedule_name"] = (
            bias_schedule_name_for(endpoint_name)
            if backend == "model-monitor"
            else quality_schedule_name_for(endpoint_name)
        )
    observability = EndpointObservability(f"{name}-observability", observability_args, opts=opts)
    alarm_topic_arn = observability.topic_arn

    endpoint = ModelEndpoint(
        f"{name}-endpoint",
        {
            "image": served.serving_image,
            "model_data_uri": served.model_data_uri,
            "endpoint": settings.endpoint,
            "rollout": settings.rollout,
            "capture": settings.capture,
            "autoscaling": settings.autoscaling,
            "alarms": settings.alarms,
            "capture_bucket": store.capture_bucket,
            "kms_key_arn": store.kms_key_arn,
            "source_kms_key_arns": promoted_keys,
            "endpoint_name": endpoint_name,
            "alarm_topic_arn": observability.topic_arn,
            "protect": settings.project.protect,
            "previous_instance_type": previous.get_output(outputs.ENDPOINT_INSTANCE_TYPE),
            "previous_autoscaling_enabled": previous.get_output(outputs.ENDPOINT_AUTOSCALING_ENABLED),
            # What AWS holds now: a rollout starts at the live desired count, the live model stays readable.
            "live_endpoint": read_live_endpoint(endpoint_name, VARIANT_NAME, settings.project.region),
            "previous_rollout_fingerprint": previous.get_output(outputs.ENDPOINT_ROLLOUT_FINGERPRINT),
            "previous_rollout_start_count": previous.get_output(outputs.ENDPOINT_ROLLOUT_START_COUNT),
        },
        opts=opts,
    )

    # --- drift monitoring over the captured data --------------------------------------------------------------
    monitor_args: DriftMonitorArgs = {
        "settings": settings.monitoring,
        "endpoint_name": endpoint_name,
        "region": settings.project.region,
        "capture_s3_uri": store.capture_bucket.apply(lambda bucket: f"s3://{bucket}/{CAPTURE_PREFIX}/"),
        "baseline_statistics_uri": served.baseline_statistics_uri,
        "baseline_constraints_uri": served.baseline_constraints_uri,
        "reports_bucket": store.model_bucket,
        "kms_key_arn": store.kms_key_arn,
        "source_kms_key_arns": promoted_keys,
        "depends_on": [endpoint],  # a monitoring schedule needs the endpoint, with capture on
    }
    if backend == "pipeline":
        monitor_args["monitor_image"] = image_in_use(
            "monitoring", container_image("monitoring", settings.images.monitoring)
        )
    monitor = DriftMonitor(f"{name}-monitor", monitor_args, opts=opts)

    # The SageMaker part of the output contract (components/outputs.py SAGEMAKER_OUTPUTS).
    pulumi.export(outputs.ENDPOINT_NAME, endpoint.endpoint_name)
    pulumi.export(outputs.ENDPOINT_ARN, endpoint.endpoint_arn)
    pulumi.export(outputs.ENDPOINT_CONFIG_NAME, endpoint.endpoint_config_name)
    pulumi.export(outputs.ENDPOINT_VARIANT_NAME, endpoint.variant_name)
    pulumi.export(outputs.ENDPOINT_INSTANCE_TYPE, endpoint.instance_type)
    pulumi.export(outputs.ENDPOINT_AUTOSCALING_ENABLED, endpoint.autoscaling_enabled)
    pulumi.export(outputs.ENDPOINT_ROLLOUT_FINGERPRINT, endpoint.rollout_fingerprint)
    pulumi.export(outputs.ENDPOINT_ROLLOUT_START_COUNT, endpoint.rollout_start_count)
    pulumi.export(outputs.ENDPOINT_ROLE_ARN, endpoint.execution_role_arn)
    pulumi.export(outputs.INVOKE_POLICY_ARN, endpoint.invoke_policy_arn)
    pulumi.export(outputs.ROLLBACK_ALARM_NAMES, endpoint.rollback_alarm_names)
    pulumi.export(outputs.CAPTURE_URI, endpoint.capture_uri)
    pulumi.export(outputs.ALARM_TOPIC_ARN, observability.topic_arn)
    pulumi.export(outputs.DASHBOARD_URL, observability.dashboard_url)
    pulumi.export(outputs.MONITOR_SCHEDULE_NAME, monitor.schedule_name)
    pulumi.export(outputs.MONITOR_REPORTS_URI, monitor.reports_uri)

# --- model lifecycle: training pipeline and model registry (docs/lifecycle.md) ------------------------------
if settings.lifecycle.enabled:
    registry = ModelRegistry(
        f"{name}-registry",
        {
            "group_name": name,
            "reader_accounts": settings.lifecycle.registry_reader_accounts,
            "protect": settings.project.protect,
        },
        opts=opts,
    )
    lifecycle_training_image = container_image("training", settings.images.training)
    pipeline_args: TrainingPipelineArgs = {
        "training_image": image_in_use("training", lifecycle_training_image),
        "training_repository_arn": lifecycle_training_image.repository_arn,
        "serving_image": image_in_use("serving", container_image("serving", settings.images.serving)),
        "data_bucket": store.data_bucket,
        "model_bucket": store.model_bucket,
        "kms_key_arn": store.kms_key_arn,
        "group_name": registry.group_name,
        "region": settings.project.region,
        "training": settings.training,
        "lifecycle": settings.lifecycle,
    }
    if settings.lifecycle.tracking:
        tracking = ExperimentTracking(
            f"{name}-tracking",
            {"model_bucket": store.model_bucket, "kms_key_arn": store.kms_key_arn, "lifecycle": settings.lifecycle},
            opts=opts,
        )
        pipeline_args["tracking_server_arn"] = tracking.server_arn
    if serves_sagemaker:
        pipeline_args["alarm_topic_arn"] = observability.topic_arn  # pyright: ignore[reportPossiblyUnboundVariable]  # serves_sagemaker made it
        pipeline_args["drift_alarm_name"] = alarm_name(endpoint_name, "drift-violations")
    training_pipeline = TrainingPipeline(f"{name}-lifecycle", pipeline_args, opts=opts)
    pulumi.export(outputs.TRAINING_PIPELINE_NAME, training_pipeline.pipeline_name)
# --- end of the model lifecycle ---------------------------------------------------------------------------

# --- batch inference: Batch Transform of an input prefix with the served model (docs/serving.md) ------------
if settings.batch.enabled:
    BatchTransform(
        f"{name}-batch",
        {
            "image": served.serving_image,
            "model_data_uri": served.model_data_uri,
            "data_bucket": store.data_bucket,
            "kms_key_arn": store.kms_key_arn,
            "source_kms_key_arns": promoted_keys,
            "region": settings.project.region,
            "settings": settings.batch,
            "precision": settings.endpoint.precision,
        },
        opts=opts,
    )

# --- cost guard rails: the stack's budget alerts its alarm topic (or the alarm addresses without one) -------
cost_args: CostGuardArgs = {"stack": settings.stack, "settings": settings.cost, "emails": settings.alarms.emails}
if alarm_topic_arn is not None:
    cost_args.update(topic_arn=alarm_topic_arn, endpoint_name=endpoint_name, variant_name=VARIANT_NAME)
CostGuard(name, cost_args, opts=opts)

# --- the output contract (components/outputs.py) ----------------------------------------------------------
pulumi.export(outputs.REGION, settings.project.region)
pulumi.export(outputs.IMAGE_BUILDS, image_builds)
pulumi.export(outputs.KMS_KEY_ARN, store.kms_key_arn)
pulumi.export(outputs.DATA_BUCKET, store.data_bucket)
pulumi.export(outputs.MODEL_BUCKET, store.model_bucket)
pulumi.export(outputs.CAPTURE_BUCKET, store.capture_bucket)
# The model as promoted (its source's URIs and digest); the endpoint's copies are named by its own resources.
for output_name, value in model.exports().items():
    pulumi.export(output_name, value)
