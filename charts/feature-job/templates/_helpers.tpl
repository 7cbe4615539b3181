{{- define "feature-job.name" -}}
{{- printf "%s" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "feature-job.labels" -}}
app.kubernetes.io/name: feature-job
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlkit
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The SparkApplication spec, shared by the one-off and the scheduled form. */}}
{{- define "feature-job.sparkSpec" -}}
{{- $profile := include "feature-job.profile" . | fromJson -}}
{{- $store := include "feature-job.storeUri" (dict "key" "featureStore" "uri" (.Values.featureStore | default $profile.featureStore) "root" $profile.root) -}}
{{- $input := include "feature-job.storeUri" (dict "key" "input" "uri" .Values.input "root" $profile.root) -}}
{{- $account := $profile.serviceAccounts.spark -}}
type: Python
pythonVersion: "3"
mode: cluster
image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
imagePullPolicy: {{ .Values.image.pullPolicy | default $profile.imagePullPolicy | default "Always" }}
mainApplicationFile: local:///opt/mlkit/workloads/features/__main__.py
arguments:
  - ingest
  {{- range $file, $_ := .Values.specs }}
  - --spec
  - /etc/mlkit/specs/{{ $file }}
  {{- end }}
  - --input
  - {{ $input | quote }}
  - --store
  - {{ $store | quote }}
  {{- with .Values.eventTime }}
  - --event-time
  - {{ . | quote }}
  {{- end }}
  {{- with .Values.pushgateway }}
  - --pushgateway
  - {{ . | quote }}
  {{- end }}
sparkVersion: {{ .Values.sparkVersion | quote }}
hadoopConfigMap: {{ $profile.hadoopConfigMap }}
sparkConf:
  {{- /* The root filesystem is read-only: Spark SQL's warehouse goes to the writable /tmp. */}}
  {{- toYaml (merge (deepCopy .Values.sparkConf) (dict "spark.sql.warehouse.dir" "/tmp/spark-warehouse")) | nindent 2 }}
restartPolicy:
  type: OnFailure
  {{- toYaml .Values.restartPolicy | nindent 2 }}
volumes:
  - name: specs
    configMap:
      name: {{ include "feature-job.name" . }}-specs
  # The only writable path besides Spark's own local dirs (emptyDirs Spark adds itself): the JVM's and
  # Python's temp files, Hadoop's S3A upload buffers and Hudi's spill files all go to /tmp.
  - name: tmp
    emptyDir: {}
  # The platform's ConfigMap in the team namespace: the job reads its store and settings from it.
  - name: team-profile
    configMap:
      name: mlkit-team-profile
driver:
  cores: {{ .Values.driver.cores }}
  memory: {{ .Values.driver.memory | quote }}
  serviceAccount: {{ $account }}
  labels:
    {{- include "feature-job.labels" . | nindent 4 }}
    app.kubernetes.io/component: driver
    {{- /* What the target's workload identity needs (AKS: projects the federated token). */}}
    {{- with $profile.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $profile.storeKeysSecret.spark }}
  envFrom:  # object-store keys, on targets without a cloud identity (kind, existing)
    - secretRef:
        name: {{ . }}
  {{- end }}
  {{- include "feature-job.podEnv" $profile | nindent 2 }}
  {{- include "feature-job.podSecurity" . | nindent 2 }}
executor:
  instances: {{ .Values.executor.instances }}
  cores: {{ .Values.executor.cores }}
  memory: {{ .Values.executor.memory | quote }}
  serviceAccount: {{ $account }}
  labels:
    {{- include "feature-job.labels" . | nindent 4 }}
    app.kubernetes.io/component: executor
    {{- /* What the target's workload identity needs (AKS: projects the federated token). */}}
    {{- with $profile.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $profile.storeKeysSecret.spark }}
  envFrom:  # object-store keys, on targets without a cloud identity (kind, existing)
    - secretRef:
        name: {{ . }}
  {{- end }}
  {{- include "feature-job.podEnv" $profile | nindent 2 }}
  {{- include "feature-job.podSecurity" . | nindent 2 }}
{{- end -}}

{{/* The team and namespace the workload checks its mounted profile against (workloads/common/settings.py). */}}
{{- define "feature-job.podEnv" -}}
env:
  - name: MLKIT_TEAM
    value: {{ .team | quote }}
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
{{- end -}}

{{/* What Pod Security `restricted` requires of the driver and executor pods, and their mounts. */}}
{{- define "feature-job.podSecurity" -}}
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 185
  runAsGroup: 185
  fsGroup: 185
  seccompProfile:
    type: RuntimeDefault
securityContext:
  runAsNonRoot: true
  runAsUser: 185
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
volumeMounts:
  - name: specs
    mountPath: /etc/mlkit/specs
    readOnly: true
  - name: tmp
    mountPath: /tmp
  - name: team-profile
    mountPath: /etc/mlkit/profile
    readOnly: true
{{- end -}}

{{/* The team profile (mlkit_contract.TeamProfile), as a dict: the platform's ConfigMap mlkit-team-profile in
the release namespace, read at install; else the `profile` value (helm template, GitOps, tests); else a failure. */}}
{{- define "feature-job.profile" -}}
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
{{- define "feature-job.storeUri" -}}
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
