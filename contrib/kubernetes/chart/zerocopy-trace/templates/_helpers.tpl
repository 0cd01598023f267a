{{/* The release's name for its objects, at most 63 characters. */}}
{{- define "zerocopy-trace.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels that select the agent's pods. */}}
{{- define "zerocopy-trace.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "zerocopy-trace.labels" -}}
{{ include "zerocopy-trace.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The relabelings of a PodMonitor or ServiceMonitor: the traced workloads' labels win. */}}
{{- define "zerocopy-trace.relabelings" -}}
- action: labeldrop
  regex: (container|pod|namespace)
- action: replace
  sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
{{- end -}}

{{/* The agent's --names-from: kubelet's logs and the CRI socket, as the values say. */}}
{{- define "zerocopy-trace.namesFrom" -}}
{{- $sources := list -}}
{{- if .Values.names.kubeletLogs -}}
{{- $sources = append $sources "kubelet-logs" -}}
{{- end -}}
{{- if .Values.names.criSocket.enabled -}}
{{- $sources = append $sources (printf "cri=%s" .Values.names.criSocket.path) -}}
{{- end -}}
{{- if $sources -}}
{{- join "," $sources -}}
{{- else -}}
none
{{- end -}}
{{- end -}}
