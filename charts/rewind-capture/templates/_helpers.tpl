{{/*
Chart name, cut at 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "rewind-capture.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name "<release>-<chart>", cut at 63 characters; the release name alone when
it already contains the chart name.
*/}}
{{- define "rewind-capture.fullname" -}}
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

{{/*
Name of a component's resources: "<fullname>-<component>", the fullname cut so the whole name
fits 63 characters (or the optional third argument: CronJob names must fit 52).
Call with (list $ "component") or (list $ "component" 52).
*/}}
{{- define "rewind-capture.componentName" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $max := 63 }}
{{- if gt (len .) 2 }}{{ $max = index . 2 }}{{ end }}
{{- $prefix := include "rewind-capture.fullname" $root | trunc (int (sub (sub $max 1) (len $component))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix $component }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "rewind-capture.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. helm.sh/chart and the version change on upgrade, so they are never in selectors.
*/}}
{{- define "rewind-capture.labels" -}}
helm.sh/chart: {{ include "rewind-capture.chart" . }}
{{ include "rewind-capture.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rewind
{{- end }}

{{/*
Selector labels: stable for the life of a release.
*/}}
{{- define "rewind-capture.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rewind-capture.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component. Call with (list $ "component").
*/}}
{{- define "rewind-capture.componentLabels" -}}
{{ include "rewind-capture.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "rewind-capture.componentSelectorLabels" -}}
{{ include "rewind-capture.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
The rewind image (sidecar, scheduled capture, archiver).
*/}}
{{- define "rewind-capture.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Redis URL the sidecar and the archiver use: the external redis.url, or the bundled Redis Service.
*/}}
{{- define "rewind-capture.redisUrl" -}}
{{- if and .Values.redis.enabled .Values.redis.url }}
{{- fail "redis.url is set and redis.enabled is true: set redis.enabled=false to use an external Redis, or unset redis.url" }}
{{- else if .Values.redis.url }}
{{- .Values.redis.url }}
{{- else if .Values.redis.enabled }}
{{- printf "redis://%s:6379/0" (include "rewind-capture.componentName" (list . "redis")) }}
{{- else }}
{{- fail "no Redis: set redis.enabled=true (bundled) or redis.url=redis://HOST:6379/0 (external)" }}
{{- end }}
{{- end }}

{{/*
Prometheus scrape annotations for a pod template. Call with (list $ port).
*/}}
{{- define "rewind-capture.scrapeAnnotations" -}}
{{- if (index . 0).Values.scrapeAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
