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
type: Python
pythonVersion: "3"
mode: cluster
image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
mainApplicationFile: local:///opt/mlkit/workloads/features/__main__.py
arguments:
  - ingest
  {{- range $file, $_ := .Values.specs }}
  - --spec
  - /etc/mlkit/specs/{{ $file }}
  {{- end }}
  - --input
  - {{ .Values.input | quote }}
  - --store
  - {{ .Values.featureStore | quote }}
  {{- with .Values.eventTime }}
  - --event-time
  - {{ . | quote }}
  {{- end }}
  {{- with .Values.pushgateway }}
  - --pushgateway
  - {{ . | quote }}
  {{- end }}
sparkVersion: {{ .Values.sparkVersion | quote }}
{{- with .Values.hadoopConfigMap }}
hadoopConfigMap: {{ . }}
{{- end }}
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
driver:
  cores: {{ .Values.driver.cores }}
  memory: {{ .Values.driver.memory | quote }}
  serviceAccount: {{ .Values.serviceAccount }}
  labels:
    {{- include "feature-job.labels" . | nindent 4 }}
    app.kubernetes.io/component: driver
    azure.workload.identity/use: "true"  # harmless elsewhere; on AKS it projects the federated token
  envFrom:  # object-store keys, on targets without a cloud identity (kind, existing)
    - secretRef:
        name: {{ .Values.serviceAccount }}-object-store
        optional: true
  {{- include "feature-job.podSecurity" . | nindent 2 }}
executor:
  instances: {{ .Values.executor.instances }}
  cores: {{ .Values.executor.cores }}
  memory: {{ .Values.executor.memory | quote }}
  serviceAccount: {{ .Values.serviceAccount }}
  labels:
    {{- include "feature-job.labels" . | nindent 4 }}
    app.kubernetes.io/component: executor
    azure.workload.identity/use: "true"  # harmless elsewhere; on AKS it projects the federated token
  envFrom:  # object-store keys, on targets without a cloud identity (kind, existing)
    - secretRef:
        name: {{ .Values.serviceAccount }}-object-store
        optional: true
  {{- include "feature-job.podSecurity" . | nindent 2 }}
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
{{- end -}}
