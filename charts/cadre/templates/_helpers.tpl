{{/*
Helm's own labels, added to every object of the release (the plain install has none of
them: the test that compares the two installs leaves exactly these out).
*/}}
{{- define "cadre.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The labels of one component: its selector labels and Helm's. */}}
{{- define "cadre.labels" -}}
{{ include "cadre.selectorLabels" . }}
{{ include "cadre.helmLabels" .root }}
{{- end }}

{{/* Selector labels of a component; call with (dict "root" $ "component" "operator"). */}}
{{- define "cadre.selectorLabels" -}}
app.kubernetes.io/name: cadre
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The operator's image: repository@digest, or repository:tag (default appVersion). */}}
{{- define "cadre.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The operator config file, as the cadre-config ConfigMap holds it. */}}
{{- define "cadre.configFile" -}}
{{ toYaml .Values.config }}
{{- end }}

{{/*
The objects of a manifest copied into files/ (python -m cadre.tools.chart), one YAML
document each: moved into the release's namespace (their own, and the namespace of a
binding's ServiceAccount, and the operator's user name in the policies' CEL), with Helm's
labels added. Call with (dict "root" $ "file" "files/rbac.yaml").
*/}}
{{- define "cadre.objectsOf" -}}
{{- $root := .root -}}
{{- $text := $root.Files.Get .file | replace "system:serviceaccount:cadre-system:" (printf "system:serviceaccount:%s:" $root.Release.Namespace) -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $text -1 }}
{{- $object := fromYaml $doc }}
{{- if $object.kind }}
{{- $metadata := $object.metadata }}
{{- $_ := set $metadata "labels" (merge (dict) ($metadata.labels | default dict) (include "cadre.helmLabels" $root | fromYaml)) }}
{{- if $metadata.namespace }}
{{- $_ := set $metadata "namespace" $root.Release.Namespace }}
{{- end }}
{{- range $subject := $object.subjects | default list }}
{{- if $subject.namespace }}
{{- $_ := set $subject "namespace" $root.Release.Namespace }}
{{- end }}
{{- end }}
---
{{ toYaml $object }}
{{- end }}
{{- end }}
{{- end }}

{{/* One object of a copied manifest, by kind and name (for the uninstall hook's rules). */}}
{{- define "cadre.objectIn" -}}
{{- $root := .root -}}
{{- $found := dict -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" ($root.Files.Get .file) -1 }}
{{- $object := fromYaml $doc }}
{{- if and (eq ($object.kind | default "") $.kind) (eq (($object.metadata | default dict).name | default "") $.name) }}
{{- $found = $object }}
{{- end }}
{{- end }}
{{- toYaml $found }}
{{- end }}

{{/* The pod-level settings of the operator's one-shot tools (CronJob, uninstall hook). */}}
{{- define "cadre.toolPodSpec" -}}
securityContext:
  runAsNonRoot: true
  seccompProfile: {type: RuntimeDefault}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
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

{{/* The container settings of those tools, after their args. */}}
{{- define "cadre.toolContainer" -}}
env:
  - name: POD_NAME
    valueFrom: {fieldRef: {fieldPath: metadata.name}}
resources:
  requests: {cpu: 50m, memory: 128Mi}
  limits: {memory: 512Mi}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
volumeMounts:
  - {name: config, mountPath: /etc/cadre, readOnly: true}
{{- end }}
