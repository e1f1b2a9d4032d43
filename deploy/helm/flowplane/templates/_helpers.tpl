{{- define "flowplane.name" -}}{{ .Release.Name }}-flowplane{{- end -}}
{{- /* Env every service shares, plus its identity: config gets the service secret, every
other service only its own credential. Argument: (dict "root" . "service" NAME). */ -}}
{{- define "flowplane.env" -}}
{{- if eq .service "config" }}
- name: FLOWPLANE_SERVICE_SECRET
  valueFrom: { secretKeyRef: { name: {{ include "flowplane.name" .root }}, key: service-token } }
{{- else }}
- name: FLOWPLANE_SERVICE_CREDENTIAL
  valueFrom: { secretKeyRef: { name: {{ include "flowplane.name" .root }}-{{ .service }}, key: credential } }
{{- end }}
- name: FLOWPLANE_NATS_URL
  value: {{ .root.Values.natsUrl | quote }}
- name: FLOWPLANE_NATS_PREFIX
  value: {{ .root.Values.natsPrefix | quote }}
- name: FLOWPLANE_CONFIG_URL
  value: http://{{ include "flowplane.name" .root }}-config:18090
- name: FLOWPLANE_LOG_FORMAT
  value: json
{{- end -}}
{{- define "flowplane.probes" -}}
readinessProbe: { httpGet: { path: /readyz, port: {{ . }} }, periodSeconds: 5 }
livenessProbe: { httpGet: { path: /healthz, port: {{ . }} }, periodSeconds: 10 }
{{- end -}}

{{/* TLS on a port Envoys call: env for the service named by the argument's prefix (XDS,
RATELIMIT, LEARNING), when .Values.tlsSecret is set. */}}
{{- define "flowplane.tlsEnv" -}}
{{- if .root.Values.tlsSecret }}
- { name: FLOWPLANE_{{ .prefix }}_TLS_CERT_FILE, value: /etc/flowplane/tls/tls.crt }
- { name: FLOWPLANE_{{ .prefix }}_TLS_KEY_FILE, value: /etc/flowplane/tls/tls.key }
{{- end }}
{{- end -}}
{{- define "flowplane.tlsMount" -}}
{{- if .Values.tlsSecret }}
volumeMounts: [{ name: tls, mountPath: /etc/flowplane/tls, readOnly: true }]
{{- end }}
{{- end -}}
{{- define "flowplane.tlsVolume" -}}
{{- if .Values.tlsSecret }}
volumes: [{ name: tls, secret: { secretName: {{ .Values.tlsSecret | quote }} } }]
{{- end }}
{{- end -}}
