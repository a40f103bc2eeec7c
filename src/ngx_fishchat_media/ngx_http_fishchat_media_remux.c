
/*
 * FishChat for nginx: a recording's FLV remuxed into an MP4 whose "moov"
 * comes first (movflags +faststart), with libavformat, in a thread of an
 * nginx thread pool: never on the event loop.
 *
 * The input comes from nginx-rtmp's recorder, but a publisher chose its
 * bytes: only the flv demuxer and the file protocol are allowed (so no
 * nested opens), probing is bounded, the number of streams, the size and
 * the duration of the output are capped, and a deadline interrupts it.
 * Nothing here touches nginx's memory but the task's own.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include "ngx_http_fishchat_media.h"


#define NGX_HTTP_FISHCHAT_MEDIA_MAX_STREAMS  4


static int ngx_http_fishchat_media_interrupt(void *data);
static ngx_int_t ngx_http_fishchat_media_open(
    ngx_http_fishchat_media_remux_t *rx, AVFormatContext **in);
static ngx_int_t ngx_http_fishchat_media_output(
    ngx_http_fishchat_media_remux_t *rx, AVFormatContext *in,
    AVFormatContext **out, int *map);
static ngx_int_t ngx_http_fishchat_media_copy(
    ngx_http_fishchat_media_remux_t *rx, AVFormatContext *in,
    AVFormatContext *out, int *map);
static ngx_int_t ngx_http_fishchat_media_fail(
    ngx_http_fishchat_media_remux_t *rx, const char *what, int err);


void
ngx_http_fishchat_media_remux_init(void)
{
    /* errors are the task's to report, in nginx's log: libav says nothing */
    av_log_set_level(AV_LOG_QUIET);
}


/* the thread's work; the results are in rx for the completion handler */

void
ngx_http_fishchat_media_remux(void *data, ngx_log_t *log)
{
    ngx_http_fishchat_media_remux_t *rx = data;

    int               map[NGX_HTTP_FISHCHAT_MEDIA_MAX_STREAMS];
    AVFormatContext  *in, *out;

    in = NULL;
    out = NULL;

    rx->rc = NGX_ERROR;

    if (ngx_http_fishchat_media_open(rx, &in) != NGX_OK) {
        goto done;
    }

    if (ngx_http_fishchat_media_output(rx, in, &out, map) != NGX_OK) {
        goto done;
    }

    if (ngx_http_fishchat_media_copy(rx, in, out, map) != NGX_OK) {
        goto done;
    }

    rx->bytes = avio_size(out->pb);
    rx->rc = NGX_OK;

done:

    if (out) {
        if (out->pb) {
            avio_closep(&out->pb);
        }

        avformat_free_context(out);
    }

    if (in) {
        avformat_close_input(&in);
    }

    if (rx->rc == NGX_OK && rename((char *) rx->tmp, (char *) rx->out) != 0)
    {
        rx->rc = NGX_ERROR;
        ngx_snprintf(rx->err, sizeof(rx->err), "rename() failed (%d)%Z",
                     ngx_errno);
    }

    if (rx->rc != NGX_OK) {
        (void) unlink((char *) rx->tmp);
    }
}


/* past the deadline, libavformat gives up at its next check */

static int
ngx_http_fishchat_media_interrupt(void *data)
{
    ngx_http_fishchat_media_remux_t *rx = data;

    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000 > rx->deadline;
}


static ngx_int_t
ngx_http_fishchat_media_open(ngx_http_fishchat_media_remux_t *rx,
    AVFormatContext **in)
{
    int                   err;
    const AVInputFormat  *flv;

    flv = av_find_input_format("flv");
    if (flv == NULL) {
        return ngx_http_fishchat_media_fail(rx, "no flv demuxer", 0);
    }

    *in = avformat_alloc_context();
    if (*in == NULL) {
        return ngx_http_fishchat_media_fail(rx, "no memory", 0);
    }

    (*in)->format_whitelist = av_strdup("flv");
    (*in)->protocol_whitelist = av_strdup("file");
    (*in)->probesize = 5 * 1000 * 1000;
    (*in)->max_analyze_duration = 5 * AV_TIME_BASE;
    (*in)->max_streams = NGX_HTTP_FISHCHAT_MEDIA_MAX_STREAMS;
    (*in)->interrupt_callback.callback = ngx_http_fishchat_media_interrupt;
    (*in)->interrupt_callback.opaque = rx;

    if ((*in)->format_whitelist == NULL || (*in)->protocol_whitelist == NULL)
    {
        return ngx_http_fishchat_media_fail(rx, "no memory", 0);
    }

    /* on failure, avformat_open_input() frees the context */

    err = avformat_open_input(in, (char *) rx->in, flv, NULL);
    if (err < 0) {
        *in = NULL;
        return ngx_http_fishchat_media_fail(rx, "not an FLV", err);
    }

    err = avformat_find_stream_info(*in, NULL);
    if (err < 0) {
        return ngx_http_fishchat_media_fail(rx, "no streams found", err);
    }

    return NGX_OK;
}


/* the MP4: the audio and video streams of the FLV, copied as they are */

static ngx_int_t
ngx_http_fishchat_media_output(ngx_http_fishchat_media_remux_t *rx,
    AVFormatContext *in, AVFormatContext **out, int *map)
{
    int                 err, n;
    unsigned            i;
    AVStream           *os;
    AVDictionary       *opts;
    enum AVMediaType    type;

    err = avformat_alloc_output_context2(out, NULL, "mp4", (char *) rx->tmp);
    if (err < 0 || *out == NULL) {
        return ngx_http_fishchat_media_fail(rx, "no mp4 muxer", err);
    }

    n = 0;

    for (i = 0; i < in->nb_streams; i++) {
        map[i] = -1;
        type = in->streams[i]->codecpar->codec_type;

        if (type != AVMEDIA_TYPE_AUDIO && type != AVMEDIA_TYPE_VIDEO) {
            continue;
        }

        os = avformat_new_stream(*out, NULL);
        if (os == NULL) {
            return ngx_http_fishchat_media_fail(rx, "no memory", 0);
        }

        err = avcodec_parameters_copy(os->codecpar, in->streams[i]->codecpar);
        if (err < 0) {
            return ngx_http_fishchat_media_fail(rx, "codec parameters", err);
        }

        os->codecpar->codec_tag = 0;
        map[i] = n++;
    }

    if (n == 0) {
        return ngx_http_fishchat_media_fail(rx, "no audio or video", 0);
    }

    err = avio_open(&(*out)->pb, (char *) rx->tmp, AVIO_FLAG_WRITE);
    if (err < 0) {
        return ngx_http_fishchat_media_fail(rx, "the output file", err);
    }

    opts = NULL;
    av_dict_set(&opts, "movflags", "+faststart", 0);

    err = avformat_write_header(*out, &opts);
    av_dict_free(&opts);

    if (err < 0) {
        return ngx_http_fishchat_media_fail(rx, "the mp4 header", err);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fishchat_media_copy(ngx_http_fishchat_media_remux_t *rx,
    AVFormatContext *in, AVFormatContext *out, int *map)
{
    int        err, o;
    double     t;
    AVPacket  *pkt;

    pkt = av_packet_alloc();
    if (pkt == NULL) {
        return ngx_http_fishchat_media_fail(rx, "no memory", 0);
    }

    for ( ;; ) {
        err = av_read_frame(in, pkt);

        if (err == AVERROR_EOF) {
            break;
        }

        if (err < 0) {
            av_packet_free(&pkt);
            return ngx_http_fishchat_media_fail(rx, "reading", err);
        }

        if ((unsigned) pkt->stream_index >= in->nb_streams
            || map[pkt->stream_index] < 0)
        {
            av_packet_unref(pkt);
            continue;
        }

        o = map[pkt->stream_index];

        if (pkt->pts != AV_NOPTS_VALUE) {
            t = pkt->pts * av_q2d(in->streams[pkt->stream_index]->time_base);

            if (t > rx->duration) {
                rx->duration = t;
            }

            if (t > (double) rx->max_duration) {
                av_packet_free(&pkt);
                return ngx_http_fishchat_media_fail(rx, "too long", 0);
            }
        }

        av_packet_rescale_ts(pkt, in->streams[pkt->stream_index]->time_base,
                             out->streams[o]->time_base);
        pkt->stream_index = o;
        pkt->pos = -1;

        err = av_interleaved_write_frame(out, pkt);
        if (err < 0) {
            av_packet_free(&pkt);
            return ngx_http_fishchat_media_fail(rx, "writing", err);
        }

        if (avio_tell(out->pb) > rx->max_size) {
            av_packet_free(&pkt);
            return ngx_http_fishchat_media_fail(rx, "too large", 0);
        }
    }

    av_packet_free(&pkt);

    err = av_write_trailer(out);
    if (err < 0) {
        return ngx_http_fishchat_media_fail(rx, "the mp4 trailer", err);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fishchat_media_fail(ngx_http_fishchat_media_remux_t *rx,
    const char *what, int err)
{
    char  text[AV_ERROR_MAX_STRING_SIZE];

    if (err < 0 && av_strerror(err, text, sizeof(text)) == 0) {
        ngx_snprintf(rx->err, sizeof(rx->err), "%s: %s%Z", what, text);

    } else {
        ngx_snprintf(rx->err, sizeof(rx->err), "%s%Z", what);
    }

    return NGX_ERROR;
}
