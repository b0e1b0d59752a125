{{/*
The capture sidecar container, for the `containers:` list of your API's pod template:

    spec:
      shareProcessNamespace: true   # the sidecar must see the API's processes
      containers:
        - name: api
          ...
        {{- include "rewind-capture.sidecar" . | nindent 8 }}
      volumes:
        {{- include "rewind-capture.sidecarVolumes" . | nindent 8 }}

and {{ include "rewind-capture.scrapeAnnotations" (list . .Values.sidecar.metricsPort) }} in the
pod template's annotations. From a chart that has rewind-capture as a dependency, pass the
subchart's context instead of ".": (index .Subcharts "rewind-capture"). See docs/chart.md.
*/}}
{{- define "rewind-capture.sidecar" -}}
{{ include "rewind-capture.captureContainer" (dict "root" . "name" "rewind-capture" "extraArgs" (list)) }}
{{- end }}

{{/*
The volumes the sidecar mounts (host debugfs and tracefs; the kernel headers with
sidecar.hostHeaders, not type-checked: a node without them still starts the pod), for `volumes:`.
*/}}
{{- define "rewind-capture.sidecarVolumes" -}}
{{- with .Values.redaction.policy -}}
- name: rewind-redaction-policy
  configMap:
    name: {{ include "rewind-capture.componentName" (list $ "redaction") }}
{{ end -}}
{{- with .Values.redaction.keySecret.name -}}
- name: rewind-redaction-key
  secret:
    secretName: {{ . }}
    defaultMode: 0400
{{ end -}}
{{- with .Values.sidecar.hostPaths -}}
- name: rewind-debugfs
  hostPath:
    path: {{ .debugfs }}
    type: Directory
- name: rewind-tracefs
  hostPath:
    path: {{ .tracefs }}
    type: Directory
{{- if $.Values.sidecar.hostHeaders }}
- name: rewind-modules
  hostPath:
    path: {{ .modules }}
- name: rewind-usr-src
  hostPath:
    path: {{ .usrSrc }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A rewind-capture container (the sidecar, or the scheduled capture with more flags).
Call with (dict "root" $ "name" "container-name" "extraArgs" (list "--flag" "value")).
*/}}
{{- define "rewind-capture.captureContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values.sidecar }}
{{- $args := concat .extraArgs $v.extraArgs -}}
- name: {{ .name }}
  image: {{ include "rewind-capture.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["rewind-capture"]
  {{- with $args }}
  args:
    {{- range . }}
    - {{ . | quote }}
    {{- end }}
  {{- end }}
  env:
    - name: REWIND_PORT
      value: {{ $v.port | quote }}
    - name: REWIND_STREAM
      value: {{ $root.Values.stream | quote }}
    - name: REWIND_REDIS
      value: {{ include "rewind-capture.redisUrl" $root | quote }}
    # the pod name keeps connection ids unique across every sidecar writing to one stream
    - name: REWIND_NODE
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: REWIND_METRICS_PORT
      value: {{ $v.metricsPort | quote }}
    - name: REWIND_LOG_FORMAT
      value: json
    {{- if $v.tls }}
    - name: REWIND_TLS
      value: "true"
    {{- end }}
    {{- if $root.Values.redaction.policy }}
    - name: REWIND_REDACT_POLICY
      value: /etc/rewind/redaction/policy.yaml
    {{- end }}
    {{- if $root.Values.redaction.keySecret.name }}
    - name: REWIND_REDACT_KEY_FILE
      value: /etc/rewind/redaction-key/{{ $root.Values.redaction.keySecret.key }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: metrics
      containerPort: {{ $v.metricsPort }}
      protocol: TCP
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    {{- if $v.privileged }}
    privileged: true
    {{- else }}
    privileged: false
    {{- if not (has "SYS_ADMIN" $v.capabilities) }}
    allowPrivilegeEscalation: false
    {{- end }}
    capabilities:
      add:
        {{- toYaml $v.capabilities | nindent 8 }}
    {{- end }}
    {{- with $v.seccompProfile }}
    seccompProfile:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  volumeMounts:
    - name: rewind-debugfs
      mountPath: /sys/kernel/debug
    - name: rewind-tracefs
      mountPath: /sys/kernel/tracing
    {{- if $v.hostHeaders }}
    - name: rewind-modules
      mountPath: /lib/modules
      readOnly: true
    - name: rewind-usr-src
      mountPath: /usr/src
      readOnly: true
    {{- end }}
    {{- if $root.Values.redaction.policy }}
    - name: rewind-redaction-policy
      mountPath: /etc/rewind/redaction
      readOnly: true
    {{- end }}
    {{- if $root.Values.redaction.keySecret.name }}
    - name: rewind-redaction-key
      mountPath: /etc/rewind/redaction-key
      readOnly: true
    {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
