{{- define "model-serving.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "model-serving.labels" -}}
app.kubernetes.io/name: model-serving
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlkit
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The team profile (mlkit_contract.TeamProfile), as a dict: the platform's ConfigMap mlkit-team-profile in
the release namespace, read at install; else the `profile` value (helm template, GitOps, tests); else a failure. */}}
{{- define "model-serving.profile" -}}
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
{{- define "model-serving.storeUri" -}}
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
