{{/*
Chart name, cut at 63 characters.
*/}}
{{- define "rewind-replay.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "rewind-replay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The run id: runId, else the release name. It is a label value and the middle of every name
("rewind-<runId>-workers" must fit 63 characters), so it is checked here.
*/}}
{{- define "rewind-replay.runId" -}}
{{- $id := default .Release.Name .Values.runId }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$" $id) }}
{{- fail (printf "run id %q: lowercase letters, digits and '-', at most 40 characters, starting and ending alphanumeric (set runId)" $id) }}
{{- end }}
{{- $id }}
{{- end }}

{{/*
Names of the run's objects, as rewind-launch names them. Call with (list $ "master"|"workers"|"config").
*/}}
{{- define "rewind-replay.objectName" -}}
{{- $root := index . 0 }}
{{- $what := index . 1 }}
{{- $base := printf "rewind-%s" (include "rewind-replay.runId" $root) }}
{{- if eq $what "config" }}{{ $base }}{{ else }}{{ printf "%s-%s" $base $what }}{{ end }}
{{- end }}

{{/*
Common labels. helm.sh/chart changes on upgrade, so it is never in a selector.
*/}}
{{- define "rewind-replay.labels" -}}
helm.sh/chart: {{ include "rewind-replay.chart" . }}
app.kubernetes.io/name: {{ include "rewind-replay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rewind
rewind.dev/run-id: {{ include "rewind-replay.runId" . }}
{{- end }}

{{/*
Labels of a run's object or Pod with its role. Call with (list $ "master"|"worker").
*/}}
{{- define "rewind-replay.roleLabels" -}}
{{- $root := index . 0 }}
{{- include "rewind-replay.labels" $root }}
rewind.dev/role: {{ index . 1 }}
{{- end }}

{{/*
The labels the master Service selects on: stable for the life of the run.
*/}}
{{- define "rewind-replay.masterSelector" -}}
rewind.dev/run-id: {{ include "rewind-replay.runId" . }}
rewind.dev/role: master
{{- end }}

{{- define "rewind-replay.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Pod-level settings shared by master and workers: non-root (the image's uid 10001), RuntimeDefault
seccomp, pull secrets, service account, placement.
*/}}
{{- define "rewind-replay.podSettings" -}}
restartPolicy: Never
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "rewind-replay.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop:
      - ALL
{{- end }}

{{/*
The master container's args: rewind-launch-master's, then rewind-replay's (as rewind-launch
builds them: the user's flags first, then the ones this chart sets).
*/}}
{{- define "rewind-replay.masterArgs" -}}
{{- $run := include "rewind-replay.runId" . }}
{{- $r := .Values.replay }}
- --run-id
- {{ $run | quote }}
- --report-dir
- {{ printf "/reports/%s" $run | quote }}
- "--"
- --source
- {{ required "replay.source is required (a Redis URL with replay.stream, or a path the Pod can read)" $r.source | quote }}
{{- with $r.stream }}
- --stream
- {{ . | quote }}
{{- end }}
{{- with $r.from }}
- {{ printf "--from=%s" . | quote }}
{{- end }}
{{- with $r.to }}
- {{ printf "--to=%s" . | quote }}
{{- end }}
- --target
- {{ required "replay.target is required (the base URL replayed against)" $r.target | quote }}
- --mode
- {{ $r.mode | quote }}
{{- with $r.speed | toString }}
- --speed
- {{ . | quote }}
{{- end }}
{{- with $r.rps | toString }}
- --rps
- {{ . | quote }}
{{- end }}
{{- with $r.slo }}
- --slo
- {{ . | quote }}
{{- end }}
{{- range $r.extraArgs }}
- {{ . | quote }}
{{- end }}
- --external-workers
- {{ .Values.workers | int64 | quote }}
- --master-bind-port
- "5557"
- --report
- {{ printf "/reports/%s" $run | quote }}
{{- if .Values.thresholds }}
- --thresholds
- /etc/rewind/thresholds.json
{{- end }}
{{- if .Values.credentials.existingSecret }}
- --credentials
- /etc/rewind-credentials/credentials.yaml
{{- end }}
{{- if .Values.metricsPort }}
- --metrics-port
- {{ .Values.metricsPort | int64 | quote }}
{{- end }}
{{- end }}
