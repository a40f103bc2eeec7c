
/*
 * FishChat for nginx: the probe of an uploaded file, with libavformat,
 * libavcodec and libswscale, in a thread of an nginx thread pool.
 *
 * The task is filled on the event loop, ngx_http_fishchat_files_probe()
 * runs in the thread and touches nothing but the task; the completion
 * handler reads the results back on the event loop.
 */


#ifndef _NGX_HTTP_FISHCHAT_FILES_PROBE_H_INCLUDED_
#define _NGX_HTTP_FISHCHAT_FILES_PROBE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_FISHCHAT_FILES_WAVEFORM   64     /* values */
#define NGX_HTTP_FISHCHAT_FILES_WAVE_MAX   1024   /* the loudest value */
#define NGX_HTTP_FISHCHAT_FILES_THUMB      320    /* px, the long side */
#define NGX_HTTP_FISHCHAT_FILES_CODECS     4


/*
 * rc:
 *   NGX_OK        a media file (audio, video or image), described below;
 *                 err is "" or says why the waveform or the thumbnail
 *                 is missing (for the log);
 *   NGX_DECLINED  not one, or not one we read (a demuxer off the list,
 *                 garbage, the deadline passed, no memory): the file is
 *                 kept as a plain file, err says why.
 *
 * duration: the container's, s; < 0 if unknown (single images).
 * container: the demuxer's name, as ffprobe's format_name.
 * codecs: the distinct codec names of the audio, video and subtitle
 *   streams in stream order, as ffprobe's codec_name (avcodec_get_name()).
 * width, height: the video or image as displayed: the sample aspect ratio
 *   applied to the width (unless past 1:8 or 8:1), swapped for a rotation
 *   of 90 or 270 degrees (the display matrix);
 *   0 for none (an audio file's cover art gives no size, only a thumbnail).
 * bitrate: the container's, bit/s, 0 if unknown.
 *
 * waveform (audio files: an audio stream and no video but cover art):
 *   the peak |sample| of the decoded audio, all channels, in each 1/64 of
 *   the audio, normalised so that the loudest value is 1024, but amplified at
 *   most 32 times (-30 dBFS, so a quiet hiss stays low; silence is all 0).
 *   Up to 120 s of audio is decoded whole; for a longer file, 0.25 s is
 *   decoded at the middle of each 1/64, after a seek.
 *
 * thumbnail (video, images, cover art): a baseline JPEG of the picture
 *   as displayed (aspect ratio, rotation, transparency over white), at
 *   most 320 px on its long side, never upscaled, at least 1 px; from the
 *   first frame, or the frame at 1 s if the file is longer than 2 s.
 *   Written to "<thumb>.tmp" and renamed to thumb.
 */

typedef struct {
    /* set on the event loop */
    u_char          path[NGX_MAX_PATH];   /* the file, NUL-terminated */
    u_char          thumb[NGX_MAX_PATH];  /* the thumbnail, "" for none */
    uint64_t        deadline;             /* Unix ms: interrupted after */

    /* the results */
    ngx_int_t       rc;
    u_char          err[128];
    double          duration;
    char            container[32];
    ngx_uint_t      ncodecs;
    char            codecs[NGX_HTTP_FISHCHAT_FILES_CODECS][32];
    ngx_int_t       width;
    ngx_int_t       height;
    int64_t         bitrate;

    ngx_uint_t      has_waveform;
    uint16_t        waveform[NGX_HTTP_FISHCHAT_FILES_WAVEFORM];

    ngx_uint_t      has_thumb;
    ngx_int_t       thumb_width;
    ngx_int_t       thumb_height;
} ngx_http_fishchat_files_probe_t;


/* ngx_http_fishchat_files_probe.c */

void ngx_http_fishchat_files_probe_init(void);
void ngx_http_fishchat_files_probe(void *data, ngx_log_t *log);


#endif /* _NGX_HTTP_FISHCHAT_FILES_PROBE_H_INCLUDED_ */
