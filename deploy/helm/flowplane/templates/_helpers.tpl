{{- define "flowplane.name" -}}{{ .Release.Name }}-flowplane{{- end -}}
{{- define "flowplane.env" -}}
- name: FLOWPLANE_SERVICE_TOKEN
  valueFrom: { secretKeyRef: { name: {{ include "flowplane.name" . }}, key: service-token } }
- name: FLOWPLANE_NATS_URL
  value: {{ .Values.natsUrl | quote }}
- name: FLOWPLANE_NATS_PREFIX
  value: {{ .Values.natsPrefix | quote }}
- name: FLOWPLANE_CONFIG_URL
  value: http://{{ include "flowplane.name" . }}-config:18090
- name: FLOWPLANE_LOG_FORMAT
  value: json
{{- end -}}
{{- define "flowplane.probes" -}}
readinessProbe: { httpGet: { path: /readyz, port: {{ . }} }, periodSeconds: 5 }
livenessProbe: { httpGet: { path: /healthz, port: {{ . }} }, periodSeconds: 10 }
{{- end -}}
