
/*
 * FishChat for nginx: the monitor's figures of the files role.
 *
 * The files location counts its uploads, downloads and probes in the
 * counters zone (ngx_fishchat_files_stats_t); the monitor shows them in
 * status.json under "files" (named as here without "fishchat_files_" and
 * "_total"), in /metrics and on the dashboard.
 */


#include "ngx_http_fishchat_monitor.h"


ngx_http_fishchat_monitor_metric_t  ngx_http_fishchat_monitor_files_metrics[] =
{
    { "fishchat_files_uploads_total", "counter",
      "Files uploaded and stored (201).",
      offsetof(ngx_fishchat_files_stats_t, uploads) },

    { "fishchat_files_upload_bytes_total", "counter",
      "Bytes of the files uploaded and stored.",
      offsetof(ngx_fishchat_files_stats_t, upload_bytes) },

    { "fishchat_files_uploads_refused_total", "counter",
      "Uploads refused (answered 400 or more).",
      offsetof(ngx_fishchat_files_stats_t, uploads_refused) },

    { "fishchat_files_downloads_total", "counter",
      "Files and thumbnails handed to the static module (GET and HEAD).",
      offsetof(ngx_fishchat_files_stats_t, downloads) },

    { "fishchat_files_probes_total", "counter",
      "Uploads posted to the thread pool for a probe.",
      offsetof(ngx_fishchat_files_stats_t, probes) },

    { "fishchat_files_probe_failures_total", "counter",
      "Probes that failed: the file is kept as a plain file.",
      offsetof(ngx_fishchat_files_stats_t, probe_failures) },

    { "fishchat_files_probe_queue", "gauge",
      "Probes posted to the thread pool and not finished.",
      offsetof(ngx_fishchat_files_stats_t, probe_queue) },

    { "fishchat_files_collected_total", "counter",
      "Files removed by the collector (expired or unreferenced).",
      offsetof(ngx_fishchat_files_stats_t, collected) },

    { NULL, NULL, NULL, 0 }
};
