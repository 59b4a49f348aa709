{{/* Names and labels, defined once. */}}

{{- define "monaco.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-monaco", or the release name when it already contains the chart name. */}}
{{- define "monaco.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<suffix>", at most 63 characters: (list $ "api") */}}
{{- define "monaco.componentName" -}}
{{- printf "%s-%s" (include "monaco.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "monaco.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where submitted programs run: values.sandbox.namespace.name or "<release>-sandbox". */}}
{{- define "monaco.sandboxNamespace" -}}
{{- default (printf "%s-sandbox" .Release.Name) .Values.sandbox.namespace.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "monaco.selectorLabels" -}}
app.kubernetes.io/name: {{ include "monaco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels of every object, plus values.commonLabels. */}}
{{- define "monaco.labels" -}}
helm.sh/chart: {{ include "monaco.chart" . }}
{{ include "monaco.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: monaco
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "api") */}}
{{- define "monaco.componentLabels" -}}
{{ include "monaco.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "monaco.componentSelectorLabels" -}}
{{ include "monaco.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
metadata.annotations (values.commonAnnotations plus extra ones), at the indentation of a top-level
object's metadata, or nothing when there are none. Call with (dict "ctx" $ "extra" map), chomping left.
*/}}
{{- define "monaco.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (deepCopy (default dict .ctx.Values.commonAnnotations)) }}
{{- with $all }}
{{- "annotations:" | nindent 2 }}
{{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}

{{- define "monaco.apiServiceAccountName" -}}
{{- if .Values.api.serviceAccount.create }}
{{- default (include "monaco.componentName" (list . "api")) .Values.api.serviceAccount.name }}
{{- else }}
{{- required "api.serviceAccount.name is required when api.serviceAccount.create is false" .Values.api.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "monaco.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "monaco.componentName" (list . "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "monaco.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "monaco.languagesConfigMap" -}}
{{- include "monaco.componentName" (list . "languages") }}
{{- end }}

{{/* The language registry file, exactly what Registry.load (core/languages.py) reads. */}}
{{- define "monaco.languagesYaml" -}}
{{- if not .Values.languages }}
{{- fail "languages: at least one language is required" }}
{{- end }}
{{- if not (hasKey .Values.languages .Values.defaultLanguage) }}
{{- fail (printf "defaultLanguage: %q is not a key of languages (have: %s)" .Values.defaultLanguage (keys .Values.languages | sortAlpha | join ", ")) }}
{{- end }}
{{- toYaml (dict "languages" .Values.languages) }}
{{- end }}

{{/*
The settings both processes read (core/settings.py), as container env. JSON for the structured ones;
MONACO_RUNTIME_CLASS_NAME only when set (an empty value would not mean "none").
*/}}
{{- define "monaco.env" -}}
- name: MONACO_BACKEND
  value: kubernetes
- name: MONACO_NAMESPACE
  value: {{ include "monaco.sandboxNamespace" . | quote }}
- name: MONACO_LANGUAGES_FILE
  value: /etc/monaco/languages.yaml
- name: MAX_WORKERS
  value: {{ .Values.maxWorkers | int | quote }}
- name: QUEUE_SIZE
  value: {{ .Values.queueSize | int | quote }}
- name: DEFAULT_LANGUAGE
  value: {{ .Values.defaultLanguage | quote }}
- name: MONACO_OUTPUT_LIMIT_BYTES
  value: {{ .Values.outputLimitBytes | int | quote }}
- name: MONACO_MAX_CODE_BYTES
  value: {{ .Values.maxCodeBytes | int | quote }}
- name: MONACO_MAX_INPUT_BYTES
  value: {{ .Values.maxInputBytes | int | quote }}
- name: MONACO_FINISHED_TTL_SECONDS
  value: {{ .Values.finishedTtlSeconds | int | quote }}
- name: MONACO_START_DEADLINE_SECONDS
  value: {{ .Values.startDeadlineSeconds | int | quote }}
- name: MONACO_JOB_DEADLINE_SLACK_SECONDS
  value: {{ .Values.jobDeadlineSlackSeconds | int | quote }}
- name: MONACO_WARM_POOL
  value: {{ .Values.warmPool | default dict | toJson | quote }}
- name: MONACO_WARM_POOL_BURST
  value: {{ .Values.warmPoolBurst | default dict | toJson | quote }}
- name: MONACO_WARM_POOL_WAIT_SECONDS
  value: {{ .Values.warmPoolWaitSeconds | quote }}
- name: MONACO_WARM_POOL_MAX_IDLE_SECONDS
  value: {{ .Values.warmPoolMaxIdleSeconds | int | quote }}
- name: MONACO_WAIT_MAX_SECONDS
  value: {{ .Values.waitMaxSeconds | quote }}
- name: MONACO_CORS_ORIGINS
  value: {{ .Values.corsOrigins | quote }}
- name: MONACO_ALLOWED_HOSTS
  value: {{ .Values.allowedHosts | quote }}
- name: MONACO_CALLBACK_ALLOW
  value: {{ .Values.callbacks.allow | quote }}
- name: MONACO_CALLBACK_DENY
  value: {{ .Values.callbacks.deny | quote }}
- name: MONACO_CALLBACK_ATTEMPTS
  value: {{ .Values.callbacks.attempts | int | quote }}
- name: MONACO_CALLBACK_BACKOFF_SECONDS
  value: {{ .Values.callbacks.backoffSeconds | quote }}
- name: MONACO_CALLBACK_TIMEOUT_SECONDS
  value: {{ .Values.callbacks.timeoutSeconds | quote }}
- name: MONACO_LOG_JSON
  value: {{ .Values.logJson | toString | quote }}
- name: MONACO_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.sandbox.runtimeClassName }}
- name: MONACO_RUNTIME_CLASS_NAME
  value: {{ . | quote }}
{{- end }}
- name: MONACO_SANDBOX_NODE_SELECTOR
  value: {{ .Values.sandbox.nodeSelector | default dict | toJson | quote }}
- name: MONACO_SANDBOX_TOLERATIONS
  value: {{ .Values.sandbox.tolerations | default list | toJson | quote }}
- name: MONACO_SANDBOX_AFFINITY
  value: {{ .Values.sandbox.affinity | default dict | toJson | quote }}
- name: MONACO_IMAGE_PULL_SECRETS
  value: {{ .Values.sandbox.imagePullSecrets | default list | toJson | quote }}
- name: MONACO_SANDBOX_LABELS
  value: {{ .Values.sandbox.podLabels | default dict | toJson | quote }}
- name: MONACO_SANDBOX_ANNOTATIONS
  value: {{ .Values.sandbox.podAnnotations | default dict | toJson | quote }}
- name: MONACO_SANDBOX_RUN_AS_USER
  value: {{ .Values.sandbox.runAsUser | int | quote }}
- name: MONACO_SANDBOX_WORK_MB
  value: {{ .Values.sandbox.workDirMb | int | quote }}
- name: MONACO_SANDBOX_CPU
  value: {{ .Values.sandbox.cpu | quote }}
{{- end }}

{{/* Annotations that roll the pods when their configuration changes. */}}
{{- define "monaco.configChecksums" -}}
checksum/languages: {{ include "monaco.languagesYaml" . | sha256sum }}
{{- end }}

{{/* Egress to the Kubernetes API (and DNS when enabled): values.networkPolicy as the context. */}}
{{- define "monaco.kubeApiEgress" -}}
- ports:
    {{- range .kubeApiPorts }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .kubeApiCIDRs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- if .dns.enabled }}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with .dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
