{{/*
Names, labels and small computed values shared by every template of the chart.
*/}}

{{- define "fleetscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, unless it already contains the chart name; 63 characters at most
(the DNS label limit of Service names).
*/}}
{{- define "fleetscale.fullname" -}}
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

{{- define "fleetscale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The recommended app.kubernetes.io labels, on every object. */}}
{{- define "fleetscale.labels" -}}
helm.sh/chart: {{ include "fleetscale.chart" . }}
{{ include "fleetscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: fleetscale
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the operator's pods; never change them after a release. */}}
{{- define "fleetscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fleetscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fleetscale.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fleetscale.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when the operator watches the whole cluster, "" when it watches listed namespaces. */}}
{{- define "fleetscale.clusterwide" -}}
{{- if not .Values.operator.watchNamespaces }}true{{- end }}
{{- end }}

{{/* Namespace of the placeholder pods of the placeholder node provider. */}}
{{- define "fleetscale.placeholderNamespace" -}}
{{- default .Release.Namespace .Values.providers.placeholder.namespace }}
{{- end }}

{{/*
RBAC rules, split by where they apply. docs/rbac.md says which code path calls each one; the
chart tests fail when a rule is added that the operator does not call.

Rules on namespaced resources of the watched namespaces: in a ClusterRole when the operator
watches the whole cluster, in a Role of each watched namespace otherwise.
*/}}
{{- define "fleetscale.rules.watched" -}}
# InferencePools: kopf lists and watches them (patch only lets it remove the finalizer that
# earlier releases put on them); the controller patches their status.
- apiGroups: ["fleetscale.io"]
  resources: ["inferencepools"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["fleetscale.io"]
  resources: ["inferencepools/status"]
  verbs: ["patch"]
# Scale targets: the pod template (accelerators per replica) and readyReplicas, from a
# watch-fed cache (list, watch; get for one not in it yet), then the size through /scale,
# written back whole with its resourceVersion (update), as the HPA does.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["get", "update"]
{{- range .Values.rbac.extraScaleTargets }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ .resource | quote }}]
  verbs: ["get"]
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ printf "%s/scale" .resource | quote }}]
  verbs: ["get", "update"]
{{- end }}
# HorizontalPodAutoscalers (KEDA's ScaledObjects create one), watched read-only: a pool whose
# workload an HPA also sizes refuses to act instead of fighting it.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch"]
# Ready pods of a target whose kind reports no readyReplicas.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Events that explain each decision.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# The shed-load ConfigMap that gateways read.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
{{- if .Values.gateways.envoyGateway.enabled }}
# Envoy Gateway: the BackendTrafficPolicy a shedding pool writes for the route it names (read,
# created, updated with a merge patch, deleted when the pool stops shedding).
- apiGroups: ["gateway.envoyproxy.io"]
  resources: ["backendtrafficpolicies"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{- with .Values.prometheus.secretNames }}
# Only the named Secrets: Prometheus bearer tokens and CA bundles that pools reference.
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ toJson . }}
  verbs: ["get"]
{{- end }}
{{- end }}

{{/* Cluster-scoped rules, always in a ClusterRole. */}}
{{- define "fleetscale.rules.cluster" -}}
# kopf's resource scanning: it notices CRDs installed after the operator started.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# kopf resolves the namespaces it serves whenever the operator runs with a namespace list
# (operator.watchNamespaces, or `fleetscale run --namespace` under a cluster-wide install);
# without it kopf retries for minutes before it falls back.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
# AcceleratorPools (cluster-scoped): GPU node pools shared by InferencePools. kopf lists and
# watches them (the InferencePools read their allocations from that watch; patch only lets it
# remove the finalizer earlier releases put on them); the controller writes their status.
- apiGroups: ["fleetscale.io"]
  resources: ["acceleratorpools"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["fleetscale.io"]
  resources: ["acceleratorpools/status"]
  verbs: ["patch"]
# An AcceleratorPool observes its nodes (a watch-fed cache of the Nodes) and the pods on each
# of them (a field selector per node; RBAC cannot narrow a list by field, so this is a
# cluster-wide pod list grant), and cordons a node (patch spec.unschedulable) before it checks
# it is still empty and releases it, with every provider. The demand of its InferencePools
# comes from the watch of the watched namespaces above.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]

{{- if .Values.providers.kwok.enabled }}
# kwok provider: fake GPU nodes are Node objects it lists, creates, and deletes by name.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "create", "delete"]
{{- end }}
{{- if and .Values.providers.clusterAPI.enabled (not .Values.providers.clusterAPI.namespaces) }}
{{- include "fleetscale.rules.clusterAPI" . | nindent 0 }}
{{- end }}
{{- if .Values.providers.placeholder.enabled }}
# Placeholder provider: the low-priority PriorityClass of the placeholder pods, created when
# missing (which nodes host model pods it reads with the AcceleratorPool rules above).
- apiGroups: ["scheduling.k8s.io"]
  resources: ["priorityclasses"]
  verbs: ["get", "create"]
{{- end }}
{{- end }}

{{/* Cluster API provider: the MachineDeployment's size through /scale; the Machines of the
nodes to release are annotated for deletion, then the size lowered by their count. In a
ClusterRole, or in a Role of each listed namespace. */}}
{{- define "fleetscale.rules.clusterAPI" -}}
- apiGroups: ["cluster.x-k8s.io"]
  resources: ["machinedeployments"]
  verbs: ["get"]
- apiGroups: ["cluster.x-k8s.io"]
  resources: ["machinedeployments/scale"]
  verbs: ["patch"]
- apiGroups: ["cluster.x-k8s.io"]
  resources: ["machines"]
  verbs: ["list", "patch"]
{{- end }}

{{/* Rules of the placeholder provider inside its own namespace. */}}
{{- define "fleetscale.rules.placeholder" -}}
# The Deployment of placeholder pods: created when missing, sized through /scale.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
# Placeholders on nodes to release get a low pod-deletion-cost, the Deployment is scaled down
# by their count, and those very pods are deleted (the ReplicaSet ranks Pending ones first).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch", "delete"]
{{- end }}
