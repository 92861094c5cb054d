"""mlplatform: reads the stack settings, wires the components together and exports the stack outputs."""

import pulumi
import pulumi_aws as aws

from components import outputs
from components.cost import CostGuard, CostGuardArgs
from components.endpoint import CAPTURE_PREFIX, VARIANT_NAME, ModelEndpoint
from components.images import ContainerImage
from components.kubernetes import KubernetesModelService, kubeconfig_text
from components.model_source import resolve_model_artifacts
from components.monitoring import (
    DriftMonitor,
    DriftMonitorArgs,
    bias_schedule_name_for,
    quality_schedule_name_for,
    schedule_name_for,
)
from components.observability import EndpointObservability, EndpointObservabilityArgs
from components.policy_context import PolicyContext
from components.settings import load_from_pulumi
from components.storage import ArtifactStore
from components.training import ModelTraining

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
        "protect": settings.project.protect,
    },
    opts=opts,
)


def container_image(role: str, prebuilt: str | None) -> ContainerImage:
    """`<role>/Dockerfile` built into its own ECR repository, or the given prebuilt image by digest."""
    return ContainerImage(
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


# --- the model: trained here (dev), or promoted from another stack or pinned values (prod) ---------------
training = None
serving_image = None
if settings.model.source == "train":
    training_image = container_image("training", settings.images.training)
    serving_image = container_image("serving", settings.images.serving)
    t = settings.training
    training = ModelTraining(
        f"{name}-train",
        {
            "image_ref": training_image.image_ref,
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
            "hyperparameters": t.hyperparameters,
            "train_prefix": t.train_prefix,
            "validation_prefix": t.validation_prefix,
            "subnet_ids": t.subnet_ids,
            "security_group_ids": t.security_group_ids,
        },
        opts=opts,
    )
    pulumi.export(outputs.TRAINING_JOB_NAME, training.training_job_name)

model = resolve_model_artifacts(
    name,
    settings.model,
    training=training,
    serving_image=serving_image.image_ref if serving_image else None,
    opts=opts,
)
promoted_keys = [model.source_kms_key_arn] if model.source_kms_key_arn is not None else []

# --- Kubernetes serving target ----------------------------------------------------------------------------
# The same serving image on an existing cluster (docs/kubernetes.md), beside or instead of the SageMaker endpoint.
serves_sagemaker = settings.serving.target in ("sagemaker", "both")
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

    # This stack's own last outputs (a StackReference to itself reads the previous update's outputs): the
    # endpoint refuses an instance-type change while autoscaling is attached, which AWS would block mid-update.
    previous = pulumi.StackReference(
        f"{name}-previous",
        stack_name=f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{pulumi.get_stack()}",
        opts=opts,
    )
    endpoint = ModelEndpoint(
        f"{name}-endpoint",
        {
            "image": model.serving_image,
            "model_data_uri": model.model_data_uri,
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
        },
        opts=opts,
    )

    # --- drift monitoring over the captured data --------------------------------------------------------------
    monitor_args: DriftMonitorArgs = {
        "settings": settings.monitoring,
        "endpoint_name": endpoint_name,
        "region": settings.project.region,
        "capture_s3_uri": store.capture_bucket.apply(lambda bucket: f"s3://{bucket}/{CAPTURE_PREFIX}/"),
        "baseline_statistics_uri": model.baseline_statistics_uri,
        "baseline_constraints_uri": model.baseline_constraints_uri,
        "reports_bucket": store.model_bucket,
        "kms_key_arn": store.kms_key_arn,
        "source_kms_key_arns": promoted_keys,
        "depends_on": [endpoint],  # a monitoring schedule needs the endpoint, with capture on
    }
    if backend == "pipeline":
        monitor_args["monitor_image"] = container_image("monitoring", settings.images.monitoring).image_ref
    monitor = DriftMonitor(f"{name}-monitor", monitor_args, opts=opts)

    # The SageMaker part of the output contract (components/outputs.py SAGEMAKER_OUTPUTS).
    pulumi.export(outputs.ENDPOINT_NAME, endpoint.endpoint_name)
    pulumi.export(outputs.ENDPOINT_ARN, endpoint.endpoint_arn)
    pulumi.export(outputs.ENDPOINT_CONFIG_NAME, endpoint.endpoint_config_name)
    pulumi.export(outputs.ENDPOINT_VARIANT_NAME, endpoint.variant_name)
    pulumi.export(outputs.ENDPOINT_INSTANCE_TYPE, endpoint.instance_type)
    pulumi.export(outputs.ENDPOINT_AUTOSCALING_ENABLED, endpoint.autoscaling_enabled)
    pulumi.export(outputs.ENDPOINT_ROLE_ARN, endpoint.execution_role_arn)
    pulumi.export(outputs.INVOKE_POLICY_ARN, endpoint.invoke_policy_arn)
    pulumi.export(outputs.ROLLBACK_ALARM_NAMES, endpoint.rollback_alarm_names)
    pulumi.export(outputs.CAPTURE_URI, endpoint.capture_uri)
    pulumi.export(outputs.ALARM_TOPIC_ARN, observability.topic_arn)
    pulumi.export(outputs.DASHBOARD_URL, observability.dashboard_url)
    pulumi.export(outputs.MONITOR_SCHEDULE_NAME, monitor.schedule_name)
    pulumi.export(outputs.MONITOR_REPORTS_URI, monitor.reports_uri)

# --- cost guard rails: the stack's budget alerts its alarm topic (or the alarm addresses without one) -------
cost_args: CostGuardArgs = {"stack": settings.stack, "settings": settings.cost, "emails": settings.alarms.emails}
if alarm_topic_arn is not None:
    cost_args.update(topic_arn=alarm_topic_arn, endpoint_name=endpoint_name, variant_name=VARIANT_NAME)
CostGuard(name, cost_args, opts=opts)

# --- the output contract (components/outputs.py) ----------------------------------------------------------
pulumi.export(outputs.REGION, settings.project.region)
pulumi.export(outputs.KMS_KEY_ARN, store.kms_key_arn)
pulumi.export(outputs.DATA_BUCKET, store.data_bucket)
pulumi.export(outputs.MODEL_BUCKET, store.model_bucket)
pulumi.export(outputs.CAPTURE_BUCKET, store.capture_bucket)
for output_name, value in model.exports().items():
    pulumi.export(output_name, value)
