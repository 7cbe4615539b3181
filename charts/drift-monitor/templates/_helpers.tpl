{{- define "drift-monitor.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "drift-monitor.labels" -}}
app.kubernetes.io/name: drift-monitor
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlkit
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The team profile (mlkit_contract.TeamProfile), as a dict: the platform's ConfigMap mlkit-team-profile in
the release namespace, read at install; else the `profile` value (helm template, GitOps, tests); else a failure. */}}
{{- define "drift-monitor.profile" -}}
{{- $json := "" -}}
{{- with lookup "v1" "ConfigMap" .Release.Namespace "mlkit-team-profile" -}}
{{- $json = index (.data | default dict) "profile.json" | default "" -}}
{{- end -}}
{{- if not $json -}}
{{- if .Values.profile -}}
{{- $json = toJson .Values.profile -}}
{{- else -}}
{{- fail (printf "no team profile: ConfigMap mlkit-team-profile (key profile.json) is not in namespace %q; install into a team namespace the platform created, or pass the team's profile (pulumi stack output teamProfiles) as the `profile` value" .Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- $profile := fromJson $json -}}
{{- if ne (toString (index $profile "schemaVersion")) "1" -}}
{{- fail (printf "the team profile in namespace %q is not schemaVersion 1 (this chart reads 1): %s" .Release.Namespace (index $profile "Error" | default (toString (index $profile "schemaVersion")))) -}}
{{- end -}}
{{- toJson $profile -}}
{{- end -}}

{{/* A store path a user typed, resolved and checked against the team root: a full URI must lie under the root,
a relative path is taken under it. Called with (dict "key" <value name> "uri" <value> "root" <profile root>). */}}
{{- define "drift-monitor.storeUri" -}}
{{- $root := trimSuffix "/" .root -}}
{{- $uri := .uri -}}
{{- if not (or (contains "://" $uri) (hasPrefix "/" $uri)) -}}
{{- $uri = printf "%s/%s" $root $uri -}}
{{- end -}}
{{- $below := splitList "/" (trimPrefix $root $uri) -}}
{{- if or (not (or (eq $uri $root) (hasPrefix (printf "%s/" $root) $uri))) (has ".." $below) (has "." $below) -}}
{{- fail (printf "%s %q lies outside the team root %s: give a URI under it, or a path relative to it" .key .uri $root) -}}
{{- end -}}
{{- $uri -}}
{{- end -}}

{{/* MLflow's URI: both the drift job (models:/ URIs) and the trigger (the served version's run) read it. */}}
{{- define "drift-monitor.tracking" -}}
{{- $profile := include "drift-monitor.profile" . | fromJson -}}
{{- $tracking := $profile.mlflow.trackingUri | default "" -}}
{{- if not $tracking -}}
{{- fail (printf "the team profile has no MLflow (trackingUri null): the trigger retrains from the served version's MLflow run, and %s needs the registry" .Release.Name) -}}
{{- end -}}
{{- $tracking -}}
{{- end -}}

{{/* The drift job's command line: every flag of `python -m workloads.monitoring drift` this chart sets, in one place. */}}
{{- define "drift-monitor.driftCommand" -}}
{{- $profile := include "drift-monitor.profile" . | fromJson -}}
{{- $drift := .Values.drift -}}
{{- $modelUri := $drift.modelUri | default (printf "models:/%s@champion" .Values.model) -}}
{{- if contains "://" $modelUri -}}
{{- $modelUri = include "drift-monitor.storeUri" (dict "key" "drift.modelUri" "uri" $modelUri "root" $profile.root) -}}
{{- end -}}
{{- $requestLog := "" -}}
{{- if kindIs "invalid" $drift.requestLog -}}
{{- $requestLog = printf "%s/%s" (trimSuffix "/" $profile.requestLogs) ($drift.servingRelease | trunc 40 | trimSuffix "-") -}}
{{- else -}}
{{- $requestLog = include "drift-monitor.storeUri" (dict "key" "drift.requestLog" "uri" $drift.requestLog "root" $profile.root) -}}
{{- end -}}
{{- $pushgateway := $drift.pushgateway | default $profile.pushgateway | default "" -}}
{{- if not $pushgateway -}}
{{- fail "no Pushgateway: the team profile names none (pushgateway null: monitoring is off on this platform) and drift.pushgateway is empty; give the URL of a Prometheus Pushgateway the platform's Prometheus scrapes" -}}
{{- end -}}
- python
- -m
- workloads.monitoring
- drift
- --model-uri
- {{ $modelUri | quote }}
- --request-log
- {{ $requestLog | quote }}
- --window
- {{ $drift.window | quote }}
- --threshold
- {{ $drift.threshold | toString | quote }}
- --pushgateway
- {{ $pushgateway | quote }}
{{- end -}}

{{/* What every pod of this chart runs with: non-root, no privileges, a read-only root with a writable /tmp. */}}
{{- define "drift-monitor.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001  {{- /* the image's user (workloads/training/Dockerfile) */}}
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "drift-monitor.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* The team and namespace a workload checks its mounted profile against (workloads/common/settings.py); HOME on
the writable /tmp, since the root filesystem is read-only (MLflow's and torch's caches). */}}
{{- define "drift-monitor.env" -}}
- {name: MLKIT_TEAM, value: {{ .team | quote }}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- {name: HOME, value: /tmp}
{{- end -}}

{{/* Identity for pods that read the team's store and MLflow as the team (the drift job, the training Job). */}}
{{- define "drift-monitor.teamEnvFrom" -}}
{{- with .storeKeysSecret.models }}
# Object-store keys on targets without a cloud identity (kind, existing).
- secretRef: {name: {{ . }}}
{{- end }}
# The team's MLflow user, written by the platform into the team's namespace.
- secretRef: {name: {{ .mlflow.credentialsSecret }}, optional: true}
{{- end -}}

{{- define "drift-monitor.mounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: team-profile, mountPath: /etc/mlkit/profile, readOnly: true}
{{- end -}}

{{- define "drift-monitor.volumes" -}}
- name: tmp
  emptyDir: {}
# The platform's ConfigMap in the team namespace (not a copy): what the workload checks it against.
- name: team-profile
  configMap: {name: mlkit-team-profile}
{{- end -}}

{{/* The training Job the trigger starts. The trigger fills in its name, the command (`python -m workloads.training
train --config ... --store ... --tracking-uri ... --tag ...`) and the config, from the served version's run. */}}
{{- define "drift-monitor.retrainJob" -}}
{{- $profile := include "drift-monitor.profile" . | fromJson -}}
{{- $retrain := .Values.retrain -}}
{{- $resources := deepCopy $retrain.resources -}}
{{- if gt (int $retrain.gpu) 0 -}}
{{- $limits := $resources.limits | default dict -}}
{{- $_ := set $limits $profile.gpu.resourceName (int $retrain.gpu) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
apiVersion: batch/v1
kind: Job
metadata:
  labels:
    {{- include "drift-monitor.labels" . | nindent 4 }}
    app.kubernetes.io/component: retrain
spec:
  backoffLimit: {{ $retrain.backoffLimit }}
  activeDeadlineSeconds: {{ $retrain.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ $retrain.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "drift-monitor.labels" . | nindent 8 }}
        app.kubernetes.io/component: retrain
        {{- /* What the target's workload identity needs (AKS: projects the federated token). */}}
        {{- with $profile.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ $profile.serviceAccounts.models }}
      securityContext:
        {{- include "drift-monitor.podSecurity" . | nindent 8 }}
      {{- if gt (int $retrain.gpu) 0 }}
      {{- with $profile.gpu.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $profile.gpu.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- end }}
      containers:
        - name: train
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy | default $profile.imagePullPolicy | default "Always" }}
          env:
            {{- include "drift-monitor.env" $profile | nindent 12 }}
            - {name: MLFLOW_TRACKING_URI, value: {{ include "drift-monitor.tracking" . | quote }}}
          envFrom:
            {{- include "drift-monitor.teamEnvFrom" $profile | nindent 12 }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- include "drift-monitor.containerSecurity" . | nindent 12 }}
          volumeMounts:
            {{- include "drift-monitor.mounts" . | nindent 12 }}
      volumes:
        {{- include "drift-monitor.volumes" . | nindent 8 }}
{{- end -}}

{{- define "drift-monitor.tokenSecret" -}}
{{- .Values.trigger.tokenSecret.name | default (printf "%s-trigger-token" (include "drift-monitor.name" .)) -}}
{{- end -}}
