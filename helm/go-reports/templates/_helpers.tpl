{{/*
Names, labels and the pieces shared by the operator and the worker pools.
*/}}

{{- define "goreports.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release-wide base name (<release>-go-reports, or the release name when it already
contains the chart name). Kept to 40 characters so that suffixed names stay under 63. */}}
{{- define "goreports.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "goreports.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "goreports.selectorLabels" -}}
app.kubernetes.io/name: {{ include "goreports.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "goreports.labels" -}}
helm.sh/chart: {{ include "goreports.chart" . }}
{{ include "goreports.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: go-reports
{{- end }}

{{- define "goreports.operatorName" -}}
{{- printf "%s-operator" (include "goreports.fullname" .) }}
{{- end }}

{{- define "goreports.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "goreports.operatorName" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "goreports.workerServiceAccountName" -}}
{{- if .Values.workers.serviceAccount.create }}
{{- default (printf "%s-worker" (include "goreports.fullname" .)) .Values.workers.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.workers.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "goreports.redisName" -}}
{{- printf "%s-redis" (include "goreports.fullname" .) }}
{{- end }}

{{- define "goreports.scalingConfigName" -}}
{{- printf "%s-scaling" (include "goreports.fullname" .) }}
{{- end }}

{{- define "goreports.artifactsClaimName" -}}
{{- default (printf "%s-artifacts" (include "goreports.fullname" .)) .Values.artifacts.persistence.existingClaim }}
{{- end }}

{{/* Name of a worker pool's Deployment; argument: (list $ $poolName). */}}
{{- define "goreports.poolName" -}}
{{- $root := index . 0 }}
{{- printf "%s-worker-%s" (include "goreports.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "goreports.image" -}}
{{- $img := .image | default dict }}
{{- $repo := $img.repository | default .root.Values.image.repository }}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repo (toString $tag) }}
{{- end }}

{{/* True ("true") when the chart runs its own Redis. */}}
{{- define "goreports.embeddedRedis" -}}
{{- if and .Values.redis.enabled (not .Values.redis.addr) }}true{{- end }}
{{- end }}

{{/* The Secret holding the Redis password, or nothing when Redis has no password. */}}
{{- define "goreports.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if include "goreports.embeddedRedis" . }}
{{- include "goreports.redisName" . }}
{{- end }}
{{- end }}

{{/* Whether kopf peering is on: several replicas, or asked for. */}}
{{- define "goreports.peering" -}}
{{- if or .Values.operator.peering.enabled (gt (int .Values.operator.replicas) 1) }}true{{- end }}
{{- end }}

{{- define "goreports.peeringName" -}}
{{- default (include "goreports.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* Namespaces the operator serves, as a JSON list; empty list = every namespace. */}}
{{- define "goreports.watchNamespaces" -}}
{{- if kindIs "slice" .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/*
Every worker pool, as a JSON list: workers.pools, then workers.extraPools (pools added beside
the defaults, e.g. a custom stage's own pool, without repeating the default list).
*/}}
{{- define "goreports.pools" -}}
{{- concat (.Values.workers.pools | default list) (.Values.workers.extraPools | default list) | toJson }}
{{- end }}

{{/*
A pool's settings: workers.defaults, then the pool's own keys (one by one, so that a pool's
`minReplicas: 0` or `autoscale: false` wins over the default). Returned as JSON.
*/}}
{{- define "goreports.poolSettings" -}}
{{- $root := index . 0 }}
{{- $pool := index . 1 }}
{{- $p := deepCopy $root.Values.workers.defaults }}
{{- range $k, $v := $pool }}
{{- $_ := set $p $k $v }}
{{- end }}
{{- if lt (int $p.maxReplicas) (int $p.minReplicas) }}
{{- fail (printf "workers.pools[%s]: maxReplicas (%v) is below minReplicas (%v)" $p.name $p.maxReplicas $p.minReplicas) }}
{{- end }}
{{- toJson $p }}
{{- end }}

{{/* A label-safe form of a pool's patterns: "mysql.http" (max 63 characters). */}}
{{- define "goreports.patternsLabel" -}}
{{- regexReplaceAll "[^A-Za-z0-9._-]" (join "." .) "-" | trunc 63 | trimAll "-._" }}
{{- end }}

{{/*
Credentials Secrets to mount, as a JSON map id -> secretName: the artifact store's (s3) for
every pod, then the pool's own. Argument: (list $ $poolCredentials).
*/}}
{{- define "goreports.credentials" -}}
{{- $root := index . 0 }}
{{- $out := dict }}
{{- $s3 := $root.Values.artifacts.s3.credentials }}
{{- if and (eq $root.Values.artifacts.store "s3") $s3.id }}
{{- $_ := set $out $s3.id $s3.secretName }}
{{- end }}
{{- range (index . 1) }}
{{- $have := get $out .id }}
{{- if and $have (ne $have .secretName) }}
{{- fail (printf "credentials id %q is mounted from two Secrets (%s and %s); one id = one Secret" .id $have .secretName) }}
{{- end }}
{{- $_ := set $out .id .secretName }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* A DNS-label volume name for a credentials id (ids may hold "_" or "."). */}}
{{- define "goreports.credentialsVolume" -}}
{{- printf "cred-%s-%s" (regexReplaceAll "[^a-z0-9-]" (lower .) "-" | trunc 40 | trimAll "-") (sha256sum . | trunc 8) }}
{{- end }}

{{/* Environment shared by the operator and every worker pool. */}}
{{- define "goreports.commonEnv" -}}
- name: REDIS_ADDR
  {{- if include "goreports.embeddedRedis" . }}
  value: {{ printf "%s:6379" (include "goreports.redisName" .) | quote }}
  {{- else }}
  value: {{ .Values.redis.addr | quote }}
  {{- end }}
- name: REDIS_DB
  value: {{ .Values.redis.db | quote }}
- name: REDIS_TLS
  value: {{ .Values.redis.tls | quote }}
{{- with include "goreports.redisSecretName" . }}
- name: REDIS_PASS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.existingSecretKey }}
{{- end }}
- name: GOREPORTS_PREFIX
  value: {{ .Values.keyPrefix | quote }}
- name: GOREPORTS_LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
- name: GOREPORTS_LOG_LEVEL
  value: {{ .Values.logging.level | quote }}
- name: GOREPORTS_CREDENTIALS_DIR
  value: /var/run/goreports/credentials
- name: GOREPORTS_ARTIFACT_STORE
  value: {{ .Values.artifacts.store | quote }}
{{- if eq .Values.artifacts.store "local" }}
- name: GOREPORTS_ARTIFACT_DIR
  value: {{ .Values.artifacts.local.mountPath | quote }}
{{- else }}
- name: GOREPORTS_ARTIFACT_S3_BUCKET
  value: {{ .Values.artifacts.s3.bucket | quote }}
- name: GOREPORTS_ARTIFACT_S3_PREFIX
  value: {{ .Values.artifacts.s3.prefix | quote }}
- name: GOREPORTS_ARTIFACT_S3_ENDPOINT
  value: {{ .Values.artifacts.s3.endpoint | quote }}
- name: GOREPORTS_ARTIFACT_S3_CREDENTIALS_ID
  value: {{ .Values.artifacts.s3.credentials.id | quote }}
{{- end }}
- name: TMPDIR
  value: /tmp
- name: HOME
  value: /tmp
{{- end }}

{{/* Volumes for /tmp, the artifact store and the credentials; argument: (dict "root" $ "credentials" $map "tmpSizeLimit" $size). */}}
{{- define "goreports.volumes" -}}
- name: tmp
  emptyDir:
    {{- with .tmpSizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
{{- if eq .root.Values.artifacts.store "local" }}
- name: artifacts
  persistentVolumeClaim:
    claimName: {{ include "goreports.artifactsClaimName" .root }}
{{- end }}
{{- range $id, $secret := .credentials }}
- name: {{ include "goreports.credentialsVolume" $id }}
  secret:
    secretName: {{ $secret }}
    # 0440: readable by the pod's group (fsGroup), never writable.
    defaultMode: 288
{{- end }}
{{- end }}

{{- define "goreports.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq .root.Values.artifacts.store "local" }}
- name: artifacts
  mountPath: {{ .root.Values.artifacts.local.mountPath }}
{{- end }}
{{- range $id, $secret := .credentials }}
- name: {{ include "goreports.credentialsVolume" $id }}
  mountPath: /var/run/goreports/credentials/{{ $id }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Checks that span several values (the schema checks each value alone). */}}
{{- define "goreports.validate" -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.addr) }}
{{- fail "go-reports needs Redis 7: set redis.addr=<host:port> (with redis.existingSecret for its password) or redis.enabled=true for a single-node Redis in the release" }}
{{- end }}
{{- if and (eq .Values.artifacts.store "s3") (not .Values.artifacts.s3.bucket) }}
{{- fail "artifacts.store=s3 needs artifacts.s3.bucket" }}
{{- end }}
{{- if and (eq .Values.artifacts.store "s3") .Values.artifacts.s3.credentials.id (not .Values.artifacts.s3.credentials.secretName) }}
{{- fail "artifacts.s3.credentials.id is set: also set artifacts.s3.credentials.secretName (the Secret mounted under that id)" }}
{{- end }}
{{- if and (eq .Values.artifacts.store "local") (not .Values.artifacts.persistence.existingClaim) (not .Values.artifacts.persistence.create) }}
{{- fail "artifacts.store=local needs a ReadWriteMany volume shared by all pools: set artifacts.persistence.existingClaim or artifacts.persistence.create=true (or use artifacts.store=s3)" }}
{{- end }}
{{- $names := dict }}
{{- range include "goreports.pools" . | fromJsonArray }}
{{- if hasKey $names .name }}
{{- fail (printf "workers.pools/extraPools: two pools are named %q" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- end }}
{{- $served := dict }}
{{- range include "goreports.pools" . | fromJsonArray }}
{{- $pool := .name }}
{{- range .patterns }}
{{- if hasKey $served . }}
{{- fail (printf "workers.pools/extraPools: pattern %q is served by two pools (%s and %s); a pattern's stream belongs to one pool" . (get $served .) $pool) }}
{{- end }}
{{- $_ := set $served . $pool }}
{{- end }}
{{- end }}
{{- end }}
