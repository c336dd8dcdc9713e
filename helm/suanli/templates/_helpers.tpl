{{- define "suanli.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "suanli.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "suanli.labels" -}}
app.kubernetes.io/name: {{ include "suanli.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "suanli.selectorLabels" -}}
app.kubernetes.io/name: {{ include "suanli.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The one image of the server and every Ray pod. */}}
{{- define "suanli.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "suanli.signingSecret" -}}
{{- default (printf "%s-signing" (include "suanli.fullname" .)) .Values.signing.existingSecret -}}
{{- end -}}

{{- define "suanli.claimName" -}}
{{- default (printf "%s-storage" (include "suanli.fullname" .)) .Values.storage.pvc.existingClaim -}}
{{- end -}}

{{/* Ray labels and marker resources for a group: the same names cluster/labels.py uses. */}}
{{- define "suanli.rayLabels" -}}
{{- $g := .group -}}
{{- $site := default .root.Values.cluster.site $g.site -}}
{{- $kind := "cpu" -}}{{- $model := "" -}}{{- $memory := 0 -}}
{{- if eq $g.deviceClass "nvidia-gpu" }}{{ $kind = "gpu" }}{{ $model = $g.gpu.model }}{{ $memory = default 0 $g.gpu.memoryGB }}{{ end -}}
{{- if eq $g.deviceClass "ascend-npu" }}{{ $kind = "npu" }}{{ $model = $g.npu.model }}{{ $memory = default 0 $g.npu.memoryGB }}{{ end -}}
cluster={{ .root.Values.cluster.name }},tier={{ $g.tier }},site={{ $site }},accelerator={{ $kind }},emulated=false,node-name={{ $g.name }}{{ if $model }},accelerator-model={{ $model }}{{ end }}{{ if $memory }},accelerator-memory-gb={{ $memory }}{{ end }}
{{- end -}}

{{- define "suanli.rayResources" -}}
{{- $g := .group -}}
{{- $site := default .root.Values.cluster.site $g.site -}}
{{- $r := dict (printf "tier:%s" $g.tier) 1 (printf "site:%s" $site) 1 (printf "cluster:%s" .root.Values.cluster.name) 1 -}}
{{- if eq $g.deviceClass "nvidia-gpu" }}{{ $_ := set $r (printf "accelerator_type:%s" $g.gpu.model) 1 }}{{ end -}}
{{- if eq $g.deviceClass "ascend-npu" }}{{ $_ := set $r "NPU" $g.npu.count }}{{ $_ := set $r (printf "accelerator_type:%s" $g.npu.model) 1 }}{{ end -}}
{{- toJson $r -}}
{{- end -}}

{{- define "suanli.storageVolume" -}}
- name: suanli-storage
  persistentVolumeClaim:
    claimName: {{ include "suanli.claimName" . }}
{{- end -}}

{{- define "suanli.storageMount" -}}
- name: suanli-storage
  mountPath: {{ .Values.storage.mountPath }}
{{- end -}}

{{- define "suanli.tlsPath" -}}/etc/suanli/tls{{- end -}}

{{- define "suanli.rayAuthSecret" -}}
{{- default (printf "%s-ray-auth" (include "suanli.fullname" .)) .Values.rayAuth.existingSecret -}}
{{- end -}}

{{/* Ray token authentication, for Ray's own pods and for every client of Ray (the server). */}}
{{- define "suanli.rayAuthEnv" -}}
- {name: RAY_AUTH_MODE, value: token}
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "suanli.rayAuthSecret" . }}, key: token}
{{- end -}}

{{/* Ray Serve's HTTP ingress on every Ray pod, read by Serve's processes when they start (cluster/serve_ingress.py). */}}
{{- define "suanli.rayServeEnv" -}}
{{- if .Values.serve.haproxyIngress }}
- {name: RAY_SERVE_ENABLE_HA_PROXY, value: "1"}
{{- end }}
{{- end -}}
