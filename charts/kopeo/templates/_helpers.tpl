{{- define "kopeo.name" -}}{{ .Chart.Name }}{{- end -}}
{{- define "kopeo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "kopeo.labels" -}}
app.kubernetes.io/name: {{ include "kopeo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "kopeo.selector" -}}
app.kubernetes.io/name: {{ include "kopeo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "kopeo.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "kopeo.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
{{- define "kopeo.rules" -}}
# Read the resources it reconciles (a running copy or sync is checked with
# get for cancellation); it never edits their specs.
- apiGroups: ["kopeo.dev"]
  resources: ["imagecopies", "imagesyncs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kopeo.dev"]
  resources: ["registrycredentials"]
  verbs: ["list", "watch"]
# Write their status (merge patches).
- apiGroups: ["kopeo.dev"]
  resources: ["imagecopies/status", "imagesyncs/status", "registrycredentials/status"]
  verbs: ["patch"]
# Secrets: read those a RegistryCredential names, watch metadata only (which
# Secrets changed), and keep the rendered pull Secret (server-side apply:
# patch, and create the first time).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# ConfigMaps: read the keys an ImageCopy or ImageSync names (verify,
# encryption), and watch metadata only (which ConfigMaps changed).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# ImageSync spec.workers: run the sync as an Indexed Job (create, watch,
# suspend with a patch, delete when the spec changes), and give its pods
# their account: a ServiceAccount bound to the worker ClusterRole.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["create"]
{{- end -}}

{{/* What a worker pod may do: read and watch its ImageSync (the other
shards' 429 pauses) and report its shard. */}}
{{- define "kopeo.workerRules" -}}
- apiGroups: ["kopeo.dev"]
  resources: ["imagesyncs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kopeo.dev"]
  resources: ["imagesyncs/status"]
  verbs: ["patch"]
{{- end -}}
