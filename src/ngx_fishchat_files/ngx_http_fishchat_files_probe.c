
/*
 * FishChat for nginx: the probe of an uploaded file, in a thread of an
 * nginx thread pool: never on the event loop.  libavformat describes it
 * (container, codecs, duration, size, bitrate), libavcodec decodes a
 * voice message's waveform, and a video's or an image's first picture
 * becomes a JPEG thumbnail with libswscale and the mjpeg encoder.
 *
 * A client chose every byte of the file: only the demuxers of a list are
 * allowed (none that opens another file or a URL: no hls, dash, concat,
 * image2 sequences), with the file protocol only; only the decoders of
 * a list, single-threaded, with a cap on the pixels of a picture;
 * probing, the number of streams and the packets decoded are bounded,
 * and a deadline interrupts it all.  Nothing here touches nginx's memory
 * but the task's own, and nothing is kept between tasks.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/avstring.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include "ngx_http_fishchat_files_probe.h"


#define NGX_HTTP_FISHCHAT_FILES_PROBESIZE      (5 * 1000 * 1000)
#define NGX_HTTP_FISHCHAT_FILES_ANALYZE        (5 * AV_TIME_BASE)
#define NGX_HTTP_FISHCHAT_FILES_MAX_STREAMS    16

/* a decoded picture: 256 MB as RGBA at most */
#define NGX_HTTP_FISHCHAT_FILES_MAX_PIXELS     (8192 * 8192)

/* the waveform: up to 120 s decoded whole, in peaks of 10 ms */
#define NGX_HTTP_FISHCHAT_FILES_WAVE_WHOLE     120
#define NGX_HTTP_FISHCHAT_FILES_WAVE_CHUNKS    100        /* per s */
#define NGX_HTTP_FISHCHAT_FILES_WAVE_PACKETS   50000
#define NGX_HTTP_FISHCHAT_FILES_WAVE_WINDOW    4          /* 1/4 s a seek */
#define NGX_HTTP_FISHCHAT_FILES_SEEK_PACKETS   64
#define NGX_HTTP_FISHCHAT_FILES_WAVE_GAIN      32

/* the thumbnail */
#define NGX_HTTP_FISHCHAT_FILES_THUMB_PACKETS  600
#define NGX_HTTP_FISHCHAT_FILES_THUMB_FRAMES   120
#define NGX_HTTP_FISHCHAT_FILES_THUMB_QUALITY  4          /* 2 best, 31 */

#define NGX_HTTP_FISHCHAT_FILES_WHITELIST      2048


typedef struct {
    ngx_http_fishchat_files_probe_t  *pr;
    AVIOContext                      *pb;
    AVFormatContext                  *fmt;
    AVPacket                         *pkt;
    AVFrame                          *frame;
    AVFrame                          *next;
    int                               audio;     /* a stream, or -1 */
    int                               video;     /* a stream, or -1 */
    ngx_uint_t                        moving;    /* video, not cover art */
    ngx_uint_t                        rotation;  /* clockwise: 0, 90, .. */
} ngx_http_fishchat_files_ctx_t;


static ngx_int_t ngx_http_fishchat_files_open(
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_stream_info(
    ngx_http_fishchat_files_ctx_t *ctx);
static char *ngx_http_fishchat_files_whitelist(void);
static ngx_uint_t ngx_http_fishchat_files_allowed(enum AVCodecID id);
static ngx_int_t ngx_http_fishchat_files_describe(
    ngx_http_fishchat_files_ctx_t *ctx);
static int ngx_http_fishchat_files_streams(
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_codec(ngx_http_fishchat_files_probe_t *pr,
    const char *name);
static void ngx_http_fishchat_files_geometry(
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_uint_t ngx_http_fishchat_files_rotation(const int32_t *matrix);
static void ngx_http_fishchat_files_display(int w, int h, AVRational sar,
    ngx_uint_t rotation, int64_t *dw, int64_t *dh);
static ngx_int_t ngx_http_fishchat_files_decoder(
    ngx_http_fishchat_files_ctx_t *ctx, AVStream *st, AVCodecContext **dec);
static int ngx_http_fishchat_files_feed(ngx_http_fishchat_files_ctx_t *ctx,
    AVCodecContext *dec, int stream);

static ngx_int_t ngx_http_fishchat_files_waveform(
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_wave_whole(
    ngx_http_fishchat_files_ctx_t *ctx, AVCodecContext *dec, float *peaks);
static ngx_int_t ngx_http_fishchat_files_wave_seek(
    ngx_http_fishchat_files_ctx_t *ctx, AVCodecContext *dec, float *peaks);
static float ngx_http_fishchat_files_peak(AVFrame *frame, int s);
static float ngx_http_fishchat_files_sample(AVFrame *frame,
    enum AVSampleFormat fmt, int planar, int channels, int ch, int s);

static ngx_int_t ngx_http_fishchat_files_thumbnail(
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_first_frame(
    ngx_http_fishchat_files_ctx_t *ctx, AVCodecContext *dec, AVStream *st);
static ngx_int_t ngx_http_fishchat_files_picture(
    ngx_http_fishchat_files_ctx_t *ctx, AVStream *st);
static ngx_uint_t ngx_http_fishchat_files_frame_rotation(
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_thumb_size(int64_t dw, int64_t dh,
    int64_t *tw, int64_t *th);
static void ngx_http_fishchat_files_over_white(AVFrame *rgba);
static ngx_int_t ngx_http_fishchat_files_scale(
    ngx_http_fishchat_files_ctx_t *ctx, AVFrame *src, AVFrame *dst);
static void ngx_http_fishchat_files_rotate(AVFrame *src, AVFrame *dst,
    ngx_uint_t rotation);
static ngx_int_t ngx_http_fishchat_files_jpeg(
    ngx_http_fishchat_files_ctx_t *ctx, AVFrame *yuv);

static int ngx_http_fishchat_files_interrupt(void *data);
static ngx_uint_t ngx_http_fishchat_files_expired(
    ngx_http_fishchat_files_probe_t *pr);
static ngx_int_t ngx_http_fishchat_files_fail(
    ngx_http_fishchat_files_probe_t *pr, const char *what, int err);
static void ngx_http_fishchat_files_prefix(
    ngx_http_fishchat_files_probe_t *pr, const char *what);


/*
 * the demuxers: none opens another file (mov's external data references
 * are off by default); av_match_list() matches any of a demuxer's names
 */

static const char  ngx_http_fishchat_files_formats[] =
    "mov,matroska,ogg,mp3,wav,flac,aac,amr,mpegts,"
    "png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,gif,gif_pipe";


/* the decoders: those of these codecs, whatever their implementation */

static const enum AVCodecID  ngx_http_fishchat_files_decoders[] = {
    AV_CODEC_ID_H264, AV_CODEC_ID_HEVC, AV_CODEC_ID_VP8, AV_CODEC_ID_VP9,
    AV_CODEC_ID_AV1, AV_CODEC_ID_MPEG4, AV_CODEC_ID_THEORA,
    AV_CODEC_ID_MJPEG, AV_CODEC_ID_PNG, AV_CODEC_ID_GIF, AV_CODEC_ID_WEBP,
    AV_CODEC_ID_BMP,

    AV_CODEC_ID_AAC, AV_CODEC_ID_MP3, AV_CODEC_ID_OPUS, AV_CODEC_ID_VORBIS,
    AV_CODEC_ID_FLAC, AV_CODEC_ID_ALAC, AV_CODEC_ID_AMR_NB,
    AV_CODEC_ID_AMR_WB, AV_CODEC_ID_PCM_U8, AV_CODEC_ID_PCM_S16LE,
    AV_CODEC_ID_PCM_S16BE, AV_CODEC_ID_PCM_S24LE, AV_CODEC_ID_PCM_S32LE,
    AV_CODEC_ID_PCM_F32LE, AV_CODEC_ID_PCM_ALAW, AV_CODEC_ID_PCM_MULAW
};


void
ngx_http_fishchat_files_probe_init(void)
{
    /* errors are the task's to report, in nginx's log: libav says nothing */
    av_log_set_level(AV_LOG_QUIET);
}


/* the thread's work; the results are in pr for the completion handler */

void
ngx_http_fishchat_files_probe(void *data, ngx_log_t *log)
{
    ngx_http_fishchat_files_probe_t *pr = data;

    ngx_http_fishchat_files_ctx_t  ctx;

    pr->rc = NGX_DECLINED;
    pr->err[0] = '\0';
    pr->duration = -1;
    pr->container[0] = '\0';
    pr->ncodecs = 0;
    pr->width = 0;
    pr->height = 0;
    pr->bitrate = 0;
    pr->has_waveform = 0;
    pr->has_thumb = 0;
    pr->thumb_width = 0;
    pr->thumb_height = 0;

    ngx_memzero(&ctx, sizeof(ngx_http_fishchat_files_ctx_t));

    ctx.pr = pr;
    ctx.audio = -1;
    ctx.video = -1;

    if (ngx_http_fishchat_files_open(&ctx) != NGX_OK) {
        goto done;
    }

    if (ngx_http_fishchat_files_describe(&ctx) != NGX_OK) {
        goto done;
    }

    pr->rc = NGX_OK;

    ctx.pkt = av_packet_alloc();
    ctx.frame = av_frame_alloc();
    ctx.next = av_frame_alloc();

    if (ctx.pkt == NULL || ctx.frame == NULL || ctx.next == NULL) {
        (void) ngx_http_fishchat_files_fail(pr, "no memory", 0);
        goto done;
    }

    /* a failure leaves the description, with err saying what is missing */

    if (ctx.video >= 0 && pr->thumb[0] != '\0') {
        if (ngx_http_fishchat_files_thumbnail(&ctx) == NGX_OK) {
            pr->has_thumb = 1;
        }
    }

    if (ctx.audio >= 0 && !ctx.moving) {
        if (ngx_http_fishchat_files_waveform(&ctx) == NGX_OK) {
            pr->has_waveform = 1;
        }
    }

done:

    av_frame_free(&ctx.next);
    av_frame_free(&ctx.frame);
    av_packet_free(&ctx.pkt);

    if (ctx.fmt) {
        avformat_close_input(&ctx.fmt);
    }

    if (ctx.pb) {
        avio_closep(&ctx.pb);
    }
}


static ngx_int_t
ngx_http_fishchat_files_open(ngx_http_fishchat_files_ctx_t *ctx)
{
    int                               err;
    u_char                           *p;
    AVDictionary                     *opts;
    const AVInputFormat              *ifmt;
    AVFormatContext                  *fmt;
    AVIOInterruptCB                   int_cb;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;

    int_cb.callback = ngx_http_fishchat_files_interrupt;
    int_cb.opaque = pr;

    /* the file, opened here, through the file protocol only */

    opts = NULL;
    (void) av_dict_set(&opts, "protocol_whitelist", "file", 0);

    err = avio_open2(&ctx->pb, (char *) pr->path, AVIO_FLAG_READ,
                     &int_cb, &opts);
    av_dict_free(&opts);

    if (err < 0) {
        return ngx_http_fishchat_files_fail(pr, "the file", err);
    }

    fmt = avformat_alloc_context();
    if (fmt == NULL) {
        return ngx_http_fishchat_files_fail(pr, "no memory", 0);
    }

    fmt->pb = ctx->pb;
    fmt->format_whitelist = av_strdup(ngx_http_fishchat_files_formats);
    fmt->protocol_whitelist = av_strdup("file");
    fmt->codec_whitelist = ngx_http_fishchat_files_whitelist();
    fmt->probesize = NGX_HTTP_FISHCHAT_FILES_PROBESIZE;
    fmt->max_analyze_duration = NGX_HTTP_FISHCHAT_FILES_ANALYZE;
    fmt->max_streams = NGX_HTTP_FISHCHAT_FILES_MAX_STREAMS;
    fmt->interrupt_callback = int_cb;

    if (fmt->format_whitelist == NULL || fmt->protocol_whitelist == NULL
        || fmt->codec_whitelist == NULL)
    {
        avformat_free_context(fmt);
        return ngx_http_fishchat_files_fail(pr, "no memory", 0);
    }

    /*
     * the format is probed by the content alone (no name: image2 would
     * take a ".jpg"), among all demuxers, and refused before its header
     * is read if it is not on the list (as avformat_open_input() would);
     * on failure, avformat_open_input() frees the context, not our pb
     */

    ifmt = NULL;

    err = av_probe_input_buffer2(ctx->pb, &ifmt, "", NULL, 0, 0);
    if (err < 0) {
        avformat_free_context(fmt);
        return ngx_http_fishchat_files_fail(pr,
                   ngx_http_fishchat_files_expired(pr)
                   ? "timed out" : "not a media file", err);
    }

    if (av_match_list(ifmt->name, ngx_http_fishchat_files_formats, ',') <= 0)
    {
        avformat_free_context(fmt);
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1,
                         "a format not allowed: %s", ifmt->name);
        *p = '\0';
        return NGX_ERROR;
    }

    err = avformat_open_input(&fmt, "", ifmt, NULL);
    if (err < 0) {
        return ngx_http_fishchat_files_fail(pr,
                   ngx_http_fishchat_files_expired(pr)
                   ? "timed out" : "not a media file", err);
    }

    ctx->fmt = fmt;

    return ngx_http_fishchat_files_stream_info(ctx);
}


/* the decoders opened to find the parameters: capped as ours */

static ngx_int_t
ngx_http_fishchat_files_stream_info(ngx_http_fishchat_files_ctx_t *ctx)
{
    int                               err;
    unsigned                          i, n;
    AVDictionary                    **sopts;
    AVFormatContext                  *fmt;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;
    fmt = ctx->fmt;

    n = fmt->nb_streams;
    sopts = NULL;

    if (n) {
        sopts = av_calloc(n, sizeof(AVDictionary *));
        if (sopts == NULL) {
            return ngx_http_fishchat_files_fail(pr, "no memory", 0);
        }

        for (i = 0; i < n; i++) {
            (void) av_dict_set_int(&sopts[i], "max_pixels",
                                   NGX_HTTP_FISHCHAT_FILES_MAX_PIXELS, 0);
        }
    }

    err = avformat_find_stream_info(fmt, sopts);

    for (i = 0; i < n; i++) {
        av_dict_free(&sopts[i]);
    }

    av_freep(&sopts);

    /* interrupted, it may have given up half-way: no description */

    if (ngx_http_fishchat_files_expired(pr)) {
        return ngx_http_fishchat_files_fail(pr, "timed out", 0);
    }

    if (err < 0) {
        return ngx_http_fishchat_files_fail(pr, "no stream information",
                                            err);
    }

    return NGX_OK;
}


/*
 * the names of the decoders of the allowed codecs, for codec_whitelist:
 * all but the hardware ones (a codec may have a few, as libdav1d and av1)
 */

static char *
ngx_http_fishchat_files_whitelist(void)
{
    u_char         *p, *last, *buf;
    size_t          len;
    void           *it;
    const AVCodec  *codec;

    buf = av_malloc(NGX_HTTP_FISHCHAT_FILES_WHITELIST);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;
    last = buf + NGX_HTTP_FISHCHAT_FILES_WHITELIST;
    it = NULL;

    while ((codec = av_codec_iterate(&it)) != NULL) {

        if (!av_codec_is_decoder(codec)
            || (codec->capabilities & AV_CODEC_CAP_HARDWARE)
            || !ngx_http_fishchat_files_allowed(codec->id))
        {
            continue;
        }

        len = ngx_strlen(codec->name);

        if ((size_t) (last - p) < len + 2) {
            break;
        }

        if (p != buf) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, codec->name, len);
    }

    *p = '\0';

    return (char *) buf;
}


static ngx_uint_t
ngx_http_fishchat_files_allowed(enum AVCodecID id)
{
    ngx_uint_t  i;

    for (i = 0;
         i < sizeof(ngx_http_fishchat_files_decoders)
             / sizeof(ngx_http_fishchat_files_decoders[0]);
         i++)
    {
        if (ngx_http_fishchat_files_decoders[i] == id) {
            return 1;
        }
    }

    return 0;
}


/* the container, the codecs, the size; the streams to decode */

static ngx_int_t
ngx_http_fishchat_files_describe(ngx_http_fishchat_files_ctx_t *ctx)
{
    int                               cover;
    AVFormatContext                  *fmt;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;
    fmt = ctx->fmt;

    (void) ngx_cpystrn((u_char *) pr->container,
                       (u_char *) fmt->iformat->name, sizeof(pr->container));

    if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
        pr->duration = (double) fmt->duration / AV_TIME_BASE;
    }

    pr->bitrate = fmt->bit_rate > 0 ? fmt->bit_rate : 0;

    cover = ngx_http_fishchat_files_streams(ctx);

    ctx->audio = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL,
                                     0);
    if (ctx->audio < 0) {
        ctx->audio = -1;
    }

    if (ctx->video >= 0) {
        ctx->moving = 1;

    } else {
        ctx->video = cover;
    }

    if (ctx->audio < 0 && ctx->video < 0) {
        return ngx_http_fishchat_files_fail(pr, "no audio or video", 0);
    }

    if (ctx->moving) {
        ngx_http_fishchat_files_geometry(ctx);
    }

    return NGX_OK;
}


/*
 * The codecs of the audio, video and subtitle streams; the first video
 * stream that is not a cover picture (ctx->video).  Returns the first cover
 * picture, or -1.
 */

static int
ngx_http_fishchat_files_streams(ngx_http_fishchat_files_ctx_t *ctx)
{
    int                 cover;
    unsigned            i;
    AVStream           *st;
    AVCodecParameters  *par;

    cover = -1;

    for (i = 0; i < ctx->fmt->nb_streams; i++) {
        st = ctx->fmt->streams[i];
        par = st->codecpar;

        if (par->codec_type != AVMEDIA_TYPE_AUDIO
            && par->codec_type != AVMEDIA_TYPE_VIDEO
            && par->codec_type != AVMEDIA_TYPE_SUBTITLE)
        {
            continue;
        }

        if (par->codec_id == AV_CODEC_ID_NONE) {
            continue;
        }

        ngx_http_fishchat_files_codec(ctx->pr,
                                      avcodec_get_name(par->codec_id));

        if (par->codec_type != AVMEDIA_TYPE_VIDEO) {
            continue;
        }

        if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) {
            if (cover < 0) {
                cover = i;
            }

        } else if (ctx->video < 0) {
            ctx->video = i;
        }
    }

    return cover;
}


/* a codec's name in the list, once, while there is room */

static void
ngx_http_fishchat_files_codec(ngx_http_fishchat_files_probe_t *pr,
    const char *name)
{
    ngx_uint_t  k;

    for (k = 0; k < pr->ncodecs; k++) {
        if (ngx_strcmp(pr->codecs[k], name) == 0) {
            return;
        }
    }

    if (k < NGX_HTTP_FISHCHAT_FILES_CODECS) {
        (void) ngx_cpystrn((u_char *) pr->codecs[k], (u_char *) name,
                           sizeof(pr->codecs[k]));
        pr->ncodecs++;
    }
}


/* the video's rotation, and its size as displayed */

static void
ngx_http_fishchat_files_geometry(ngx_http_fishchat_files_ctx_t *ctx)
{
    int64_t                           dw, dh;
    AVStream                         *st;
    const int32_t                    *matrix;
    AVCodecParameters                *par;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData           *sd;
#else
    size_t                            size;
#endif

    st = ctx->fmt->streams[ctx->video];
    par = st->codecpar;

#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    sd = av_packet_side_data_get(par->coded_side_data,
                                 par->nb_coded_side_data,
                                 AV_PKT_DATA_DISPLAYMATRIX);
    matrix = (sd && sd->size >= 9 * sizeof(int32_t))
             ? (const int32_t *) sd->data : NULL;
#else
    matrix = (const int32_t *) av_stream_get_side_data(st,
                                   AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (size < 9 * sizeof(int32_t)) {
        matrix = NULL;
    }
#endif

    if (matrix) {
        ctx->rotation = ngx_http_fishchat_files_rotation(matrix);
    }

    if (par->width > 0 && par->height > 0) {
        ngx_http_fishchat_files_display(par->width, par->height,
                                        st->sample_aspect_ratio.num
                                        ? st->sample_aspect_ratio
                                        : par->sample_aspect_ratio,
                                        ctx->rotation, &dw, &dh);
        ctx->pr->width = dw;
        ctx->pr->height = dh;
    }
}


/* a display matrix's rotation, clockwise, to the nearest right angle */

static ngx_uint_t
ngx_http_fishchat_files_rotation(const int32_t *matrix)
{
    double     theta;
    ngx_int_t  n;

    /* counterclockwise, in degrees; NaN if the matrix is degenerate */
    theta = -av_display_rotation_get(matrix);

    if (theta != theta || theta > 1e6 || theta < -1e6) {
        return 0;
    }

    n = (ngx_int_t) (theta >= 0 ? theta + 45 : theta - 45) / 90;

    return (ngx_uint_t) ((n % 4 + 4) % 4) * 90;
}


/* a picture's size as displayed: its aspect ratio, then its rotation */

static void
ngx_http_fishchat_files_display(int w, int h, AVRational sar,
    ngx_uint_t rotation, int64_t *dw, int64_t *dh)
{
    int64_t  t;

    *dw = w;
    *dh = h;

    /* an aspect ratio past 1:8 or 8:1 is a broken file's, ignored */

    if (sar.num > 0 && sar.den > 0 && sar.num != sar.den
        && sar.num <= 8 * (int64_t) sar.den
        && sar.den <= 8 * (int64_t) sar.num)
    {
        *dw = ((int64_t) w * sar.num + sar.den / 2) / sar.den;
        *dw = ngx_max(*dw, 1);
    }

    if (rotation == 90 || rotation == 270) {
        t = *dw;
        *dw = *dh;
        *dh = t;
    }
}


static ngx_int_t
ngx_http_fishchat_files_decoder(ngx_http_fishchat_files_ctx_t *ctx,
    AVStream *st, AVCodecContext **dec)
{
    int             err;
    const AVCodec  *codec;

    if (!ngx_http_fishchat_files_allowed(st->codecpar->codec_id)) {
        return ngx_http_fishchat_files_fail(ctx->pr, "no decoder allowed", 0);
    }

    codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (codec == NULL) {
        return ngx_http_fishchat_files_fail(ctx->pr, "no decoder", 0);
    }

    *dec = avcodec_alloc_context3(codec);
    if (*dec == NULL) {
        return ngx_http_fishchat_files_fail(ctx->pr, "no memory", 0);
    }

    err = avcodec_parameters_to_context(*dec, st->codecpar);
    if (err < 0) {
        return ngx_http_fishchat_files_fail(ctx->pr, "codec parameters", err);
    }

    (*dec)->thread_count = 1;
    (*dec)->max_pixels = NGX_HTTP_FISHCHAT_FILES_MAX_PIXELS;
    (*dec)->pkt_timebase = st->time_base;

    err = avcodec_open2(*dec, codec, NULL);
    if (err < 0) {
        return ngx_http_fishchat_files_fail(ctx->pr, "the decoder", err);
    }

    return NGX_OK;
}


/*
 * the next packet to the decoder if it is of "stream" (one that does not
 * decode is skipped): 0; 1 when it is of another stream, dropped; or the
 * error of av_read_frame(), AVERROR_EOF at the end
 */

static int
ngx_http_fishchat_files_feed(ngx_http_fishchat_files_ctx_t *ctx,
    AVCodecContext *dec, int stream)
{
    int  err;

    err = av_read_frame(ctx->fmt, ctx->pkt);
    if (err < 0) {
        return err;
    }

    if (ctx->pkt->stream_index != stream) {
        av_packet_unref(ctx->pkt);
        return 1;
    }

    (void) avcodec_send_packet(dec, ctx->pkt);
    av_packet_unref(ctx->pkt);

    return 0;
}


/*
 * the waveform: the peak of |sample| of all channels in each 1/64 of the
 * audio, normalised so that the loudest is 1024, amplified 32 times at most
 */

static ngx_int_t
ngx_http_fishchat_files_waveform(ngx_http_fishchat_files_ctx_t *ctx)
{
    float                             max, gain, v;
    float                             peaks[NGX_HTTP_FISHCHAT_FILES_WAVEFORM];
    ngx_int_t                         rc;
    ngx_uint_t                        i;
    AVCodecContext                   *dec;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;
    dec = NULL;

    rc = ngx_http_fishchat_files_decoder(ctx, ctx->fmt->streams[ctx->audio],
                                         &dec);

    if (rc == NGX_OK) {
        if (pr->duration > NGX_HTTP_FISHCHAT_FILES_WAVE_WHOLE) {
            rc = ngx_http_fishchat_files_wave_seek(ctx, dec, peaks);

        } else {
            rc = ngx_http_fishchat_files_wave_whole(ctx, dec, peaks);
        }
    }

    avcodec_free_context(&dec);

    if (rc != NGX_OK) {
        ngx_http_fishchat_files_prefix(pr, "waveform");
        return NGX_ERROR;
    }

    max = 0;

    for (i = 0; i < NGX_HTTP_FISHCHAT_FILES_WAVEFORM; i++) {
        max = ngx_max(max, peaks[i]);
    }

    max = ngx_max(max, 1.0f / NGX_HTTP_FISHCHAT_FILES_WAVE_GAIN);
    gain = NGX_HTTP_FISHCHAT_FILES_WAVE_MAX / max;

    for (i = 0; i < NGX_HTTP_FISHCHAT_FILES_WAVEFORM; i++) {
        v = peaks[i] * gain + 0.5f;
        pr->waveform[i] = (uint16_t) ngx_min(v,
                                      (float) NGX_HTTP_FISHCHAT_FILES_WAVE_MAX);
    }

    return NGX_OK;
}


/*
 * a short file decoded whole, in peaks of 10 ms then grouped by 64: the
 * buckets follow the decoded audio, not the container's estimate
 */

static ngx_int_t
ngx_http_fishchat_files_wave_whole(ngx_http_fishchat_files_ctx_t *ctx,
    AVCodecContext *dec, float *peaks)
{
    int         err, s;
    float       v, *chunks;
    double      t;
    size_t      c, used, max, lo, hi, b;
    ngx_int_t   rc;
    ngx_uint_t  eof, packets;

    max = NGX_HTTP_FISHCHAT_FILES_WAVE_WHOLE
          * NGX_HTTP_FISHCHAT_FILES_WAVE_CHUNKS;

    chunks = av_calloc(max, sizeof(float));
    if (chunks == NULL) {
        return ngx_http_fishchat_files_fail(ctx->pr, "no memory", 0);
    }

    rc = NGX_ERROR;
    t = 0;
    used = 0;
    eof = 0;
    packets = 0;

    for ( ;; ) {

        if (ngx_http_fishchat_files_expired(ctx->pr)) {
            (void) ngx_http_fishchat_files_fail(ctx->pr, "timed out", 0);
            goto done;
        }

        if (++packets > NGX_HTTP_FISHCHAT_FILES_WAVE_PACKETS) {
            (void) ngx_http_fishchat_files_fail(ctx->pr, "too many packets",
                                                0);
            goto done;
        }

        err = ngx_http_fishchat_files_feed(ctx, dec, ctx->audio);

        if (err == 1) {
            continue;
        }

        if (err == AVERROR_EOF) {
            eof = 1;
            (void) avcodec_send_packet(dec, NULL);

        } else if (err < 0) {
            (void) ngx_http_fishchat_files_fail(ctx->pr, "reading", err);
            goto done;
        }

        for ( ;; ) {
            err = avcodec_receive_frame(dec, ctx->frame);
            if (err < 0) {
                break;
            }

            if (ctx->frame->sample_rate <= 0
                || ctx->frame->ch_layout.nb_channels <= 0)
            {
                av_frame_unref(ctx->frame);
                continue;
            }

            for (s = 0; s < ctx->frame->nb_samples; s++) {
                c = (size_t) ((t + (double) s / ctx->frame->sample_rate)
                              * NGX_HTTP_FISHCHAT_FILES_WAVE_CHUNKS);

                if (c >= max) {
                    av_frame_unref(ctx->frame);
                    (void) ngx_http_fishchat_files_fail(ctx->pr,
                                                        "too long", 0);
                    goto done;
                }

                v = ngx_http_fishchat_files_peak(ctx->frame, s);
                chunks[c] = ngx_max(chunks[c], v);

                used = c + 1;
            }

            t += (double) ctx->frame->nb_samples / ctx->frame->sample_rate;

            av_frame_unref(ctx->frame);
        }

        if (eof) {
            break;
        }
    }

    if (used == 0) {
        (void) ngx_http_fishchat_files_fail(ctx->pr, "no audio decoded", 0);
        goto done;
    }

    if (ctx->pr->duration < 0) {
        ctx->pr->duration = t;
    }

    /* each bucket gets one chunk at least, if the audio is under 0.64 s */

    for (b = 0; b < NGX_HTTP_FISHCHAT_FILES_WAVEFORM; b++) {
        lo = b * used / NGX_HTTP_FISHCHAT_FILES_WAVEFORM;
        hi = (b + 1) * used / NGX_HTTP_FISHCHAT_FILES_WAVEFORM;
        hi = ngx_max(hi, lo + 1);

        peaks[b] = 0;

        for (c = lo; c < hi; c++) {
            peaks[b] = ngx_max(peaks[b], chunks[c]);
        }
    }

    rc = NGX_OK;

done:

    av_free(chunks);

    return rc;
}


/*
 * a long file: 1/4 s decoded at the middle of each 1/64, after a seek to
 * 0.1 s before it (Opus needs 80 ms of pre-roll), the samples before it
 * decoded but ignored
 */

static ngx_int_t
ngx_http_fishchat_files_wave_seek(ngx_http_fishchat_files_ctx_t *ctx,
    AVCodecContext *dec, float *peaks)
{
    int          err, s, want, got;
    float        v;
    int64_t      start, ts, from, pts, skip;
    AVStream    *st;
    ngx_uint_t   b, packets;

    st = ctx->fmt->streams[ctx->audio];
    start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;

    for (b = 0; b < NGX_HTTP_FISHCHAT_FILES_WAVEFORM; b++) {

        ts = (int64_t) ((b + 0.5) * ctx->pr->duration * AV_TIME_BASE
                        / NGX_HTTP_FISHCHAT_FILES_WAVEFORM);
        from = ts - AV_TIME_BASE / 10;
        from = start + av_rescale_q(ngx_max(from, 0), AV_TIME_BASE_Q,
                                    st->time_base);
        ts = start + av_rescale_q(ts, AV_TIME_BASE_Q, st->time_base);

        err = avformat_seek_file(ctx->fmt, ctx->audio, INT64_MIN, from, from,
                                 0);
        if (err < 0) {
            return ngx_http_fishchat_files_fail(ctx->pr,
                       ngx_http_fishchat_files_expired(ctx->pr)
                       ? "timed out" : "seeking", err);
        }

        avcodec_flush_buffers(dec);

        peaks[b] = 0;
        want = 0;
        got = 0;

        for (packets = 0;
             packets < NGX_HTTP_FISHCHAT_FILES_SEEK_PACKETS
             && (want == 0 || got < want);
             packets++)
        {
            if (ngx_http_fishchat_files_expired(ctx->pr)) {
                return ngx_http_fishchat_files_fail(ctx->pr, "timed out", 0);
            }

            err = ngx_http_fishchat_files_feed(ctx, dec, ctx->audio);

            if (err < 0) {
                break;
            }

            if (err == 1) {
                continue;
            }

            while (avcodec_receive_frame(dec, ctx->frame) >= 0) {
                if (ctx->frame->sample_rate <= 0
                    || ctx->frame->ch_layout.nb_channels <= 0)
                {
                    av_frame_unref(ctx->frame);
                    continue;
                }

                if (want == 0) {
                    want = ctx->frame->sample_rate
                           / NGX_HTTP_FISHCHAT_FILES_WAVE_WINDOW;
                    want = ngx_max(want, 1);
                }

                /* the samples before the point */

                pts = ctx->frame->best_effort_timestamp;
                skip = 0;

                if (pts != AV_NOPTS_VALUE && pts < ts) {
                    skip = av_rescale_q(ts - pts, st->time_base,
                                        (AVRational) {
                                            1, ctx->frame->sample_rate });
                }

                s = (int) ngx_min(skip, (int64_t) ctx->frame->nb_samples);

                for ( /* void */ ; s < ctx->frame->nb_samples && got < want;
                     s++, got++)
                {
                    v = ngx_http_fishchat_files_peak(ctx->frame, s);
                    peaks[b] = ngx_max(peaks[b], v);
                }

                av_frame_unref(ctx->frame);
            }
        }
    }

    return NGX_OK;
}


/* the largest |sample| "s" of the frame's channels */

static float
ngx_http_fishchat_files_peak(AVFrame *frame, int s)
{
    int                  ch, channels, planar;
    float                v, peak;
    enum AVSampleFormat  fmt;

    channels = frame->ch_layout.nb_channels;
    planar = av_sample_fmt_is_planar(frame->format);
    fmt = av_get_packed_sample_fmt(frame->format);

    peak = 0;

    for (ch = 0; ch < channels; ch++) {
        v = ngx_http_fishchat_files_sample(frame, fmt, planar, channels, ch, s);
        peak = ngx_max(peak, v);
    }

    return peak;
}


/* |sample| in 0..1, whatever its format */

static float
ngx_http_fishchat_files_sample(AVFrame *frame, enum AVSampleFormat fmt,
    int planar, int channels, int ch, int s)
{
    float     v;
    size_t    i;
    uint8_t  *p;

    if (planar) {
        p = frame->extended_data[ch];
        i = s;

    } else {
        p = frame->extended_data[0];
        i = (size_t) s * channels + ch;
    }

    switch (fmt) {

    case AV_SAMPLE_FMT_U8:
        v = (p[i] - 128) / 128.0f;
        break;

    case AV_SAMPLE_FMT_S16:
        v = ((int16_t *) p)[i] / 32768.0f;
        break;

    case AV_SAMPLE_FMT_S32:
        v = ((int32_t *) p)[i] / 2147483648.0f;
        break;

    case AV_SAMPLE_FMT_S64:
        v = (float) (((int64_t *) p)[i] / 9223372036854775808.0);
        break;

    case AV_SAMPLE_FMT_FLT:
        v = ((float *) p)[i];
        break;

    case AV_SAMPLE_FMT_DBL:
        v = (float) ((double *) p)[i];
        break;

    default:
        return 0;
    }

    if (v != v) {
        return 0;
    }

    v = v < 0 ? -v : v;

    return v > 1 ? 1 : v;
}


/* the thumbnail: a picture decoded, scaled, turned, encoded */

static ngx_int_t
ngx_http_fishchat_files_thumbnail(ngx_http_fishchat_files_ctx_t *ctx)
{
    int                               err;
    ngx_int_t                         rc;
    AVStream                         *st;
    AVCodecContext                   *dec;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;
    st = ctx->fmt->streams[ctx->video];
    dec = NULL;

    rc = ngx_http_fishchat_files_decoder(ctx, st, &dec);

    if (rc == NGX_OK && (st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {

        /* cover art: one packet, kept by libavformat */

        err = avcodec_send_packet(dec, &st->attached_pic);

        if (err >= 0) {
            (void) avcodec_send_packet(dec, NULL);
            err = avcodec_receive_frame(dec, ctx->frame);
        }

        if (err < 0) {
            rc = ngx_http_fishchat_files_fail(pr, "decoding", err);
        }

    } else if (rc == NGX_OK) {
        rc = ngx_http_fishchat_files_first_frame(ctx, dec, st);
    }

    avcodec_free_context(&dec);

    if (rc == NGX_OK) {
        rc = ngx_http_fishchat_files_picture(ctx, st);
    }

    av_frame_unref(ctx->frame);

    if (rc != NGX_OK) {
        ngx_http_fishchat_files_prefix(pr, "thumbnail");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * the first frame decoded, or the first at 1 s or after in a file longer
 * than 2 s (a video often starts black); if the packets or the frames
 * to decode run out, the last frame decoded
 */

static ngx_int_t
ngx_http_fishchat_files_first_frame(ngx_http_fishchat_files_ctx_t *ctx,
    AVCodecContext *dec, AVStream *st)
{
    int         err;
    int64_t     start, target, pts;
    ngx_uint_t  eof, got, done, packets, frames;

    target = AV_NOPTS_VALUE;

    if (ctx->fmt->duration != AV_NOPTS_VALUE
        && ctx->fmt->duration > 2 * AV_TIME_BASE)
    {
        start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
        target = start + av_rescale_q(AV_TIME_BASE, AV_TIME_BASE_Q,
                                      st->time_base);

        /* to the key frame at 1 s or before; from the start if it fails */

        if (avformat_seek_file(ctx->fmt, ctx->video, INT64_MIN, target,
                               target, 0)
            < 0)
        {
            target = AV_NOPTS_VALUE;
        }
    }

    eof = 0;
    got = 0;
    done = 0;
    packets = 0;
    frames = 0;

    while (!done) {

        if (ngx_http_fishchat_files_expired(ctx->pr)) {
            return ngx_http_fishchat_files_fail(ctx->pr, "timed out", 0);
        }

        if (++packets > NGX_HTTP_FISHCHAT_FILES_THUMB_PACKETS) {
            break;
        }

        err = ngx_http_fishchat_files_feed(ctx, dec, ctx->video);

        if (err == 1) {
            continue;
        }

        if (err < 0) {
            /* the end, or an error: what the decoder holds still counts */
            eof = 1;
            (void) avcodec_send_packet(dec, NULL);
        }

        while (avcodec_receive_frame(dec, ctx->next) >= 0) {
            av_frame_unref(ctx->frame);
            av_frame_move_ref(ctx->frame, ctx->next);
            got = 1;

            pts = ctx->frame->best_effort_timestamp;

            if (target == AV_NOPTS_VALUE || pts == AV_NOPTS_VALUE
                || pts >= target
                || ++frames >= NGX_HTTP_FISHCHAT_FILES_THUMB_FRAMES)
            {
                done = 1;
                break;
            }
        }

        if (eof) {
            break;
        }
    }

    if (!got) {
        return ngx_http_fishchat_files_fail(ctx->pr, "no frame decoded", 0);
    }

    return NGX_OK;
}


/*
 * the decoded picture to the thumbnail: scaled to RGBA, laid over white,
 * turned as displayed, converted to full-range YUV 4:2:0 and encoded
 */

static ngx_int_t
ngx_http_fishchat_files_picture(ngx_http_fishchat_files_ctx_t *ctx,
    AVStream *st)
{
    int64_t                           dw, dh, tw, th;
    AVFrame                          *rgba, *turned, *yuv;
    ngx_int_t                         rc;
    AVRational                        sar;
    ngx_uint_t                        rotation;
    const AVPixFmtDescriptor         *desc;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;
    rgba = NULL;
    turned = NULL;
    yuv = NULL;
    rc = NGX_ERROR;

    desc = av_pix_fmt_desc_get(ctx->frame->format);

    if (desc == NULL || ctx->frame->width <= 0 || ctx->frame->height <= 0) {
        return ngx_http_fishchat_files_fail(pr, "no picture", 0);
    }

    rotation = ctx->rotation;

    if (rotation == 0) {
        rotation = ngx_http_fishchat_files_frame_rotation(ctx);
    }

    sar = st->sample_aspect_ratio.num ? st->sample_aspect_ratio
                                      : ctx->frame->sample_aspect_ratio;

    ngx_http_fishchat_files_display(ctx->frame->width, ctx->frame->height,
                                    sar, rotation, &dw, &dh);

    ngx_http_fishchat_files_thumb_size(dw, dh, &tw, &th);

    rgba = av_frame_alloc();
    turned = av_frame_alloc();
    yuv = av_frame_alloc();

    if (rgba == NULL || turned == NULL || yuv == NULL) {
        (void) ngx_http_fishchat_files_fail(pr, "no memory", 0);
        goto done;
    }

    /* scaled before it is turned */

    rgba->format = AV_PIX_FMT_RGBA;
    rgba->width = (rotation == 90 || rotation == 270) ? th : tw;
    rgba->height = (rotation == 90 || rotation == 270) ? tw : th;

    if (av_frame_get_buffer(rgba, 0) < 0) {
        (void) ngx_http_fishchat_files_fail(pr, "no memory", 0);
        goto done;
    }

    if (ngx_http_fishchat_files_scale(ctx, ctx->frame, rgba) != NGX_OK) {
        goto done;
    }

    if (desc->flags & AV_PIX_FMT_FLAG_ALPHA) {
        ngx_http_fishchat_files_over_white(rgba);
    }

    if (rotation) {
        turned->format = AV_PIX_FMT_RGBA;
        turned->width = tw;
        turned->height = th;

        if (av_frame_get_buffer(turned, 0) < 0) {
            (void) ngx_http_fishchat_files_fail(pr, "no memory", 0);
            goto done;
        }

        ngx_http_fishchat_files_rotate(rgba, turned, rotation);

    } else {
        av_frame_move_ref(turned, rgba);
    }

    yuv->format = AV_PIX_FMT_YUVJ420P;
    yuv->width = tw;
    yuv->height = th;

    if (av_frame_get_buffer(yuv, 0) < 0) {
        (void) ngx_http_fishchat_files_fail(pr, "no memory", 0);
        goto done;
    }

    if (ngx_http_fishchat_files_scale(ctx, turned, yuv) != NGX_OK) {
        goto done;
    }

    if (ngx_http_fishchat_files_jpeg(ctx, yuv) != NGX_OK) {
        goto done;
    }

    pr->thumb_width = tw;
    pr->thumb_height = th;
    rc = NGX_OK;

done:

    av_frame_free(&yuv);
    av_frame_free(&turned);
    av_frame_free(&rgba);

    return rc;
}


/*
 * A picture's own display matrix (a JPEG's EXIF), for a stream that has
 * none; a video's size as displayed turns with it.
 */

static ngx_uint_t
ngx_http_fishchat_files_frame_rotation(ngx_http_fishchat_files_ctx_t *ctx)
{
    int64_t                           side;
    ngx_uint_t                        rotation;
    AVFrameSideData                  *sd;
    ngx_http_fishchat_files_probe_t  *pr;

    sd = av_frame_get_side_data(ctx->frame, AV_FRAME_DATA_DISPLAYMATRIX);

    if (sd == NULL || sd->size < 9 * sizeof(int32_t)) {
        return 0;
    }

    rotation = ngx_http_fishchat_files_rotation((const int32_t *) sd->data);

    if (ctx->moving && (rotation == 90 || rotation == 270)) {
        pr = ctx->pr;
        side = pr->width;
        pr->width = pr->height;
        pr->height = side;
    }

    return rotation;
}


/* the thumbnail's size: the longer side at most THUMB, at least 1 pixel */

static void
ngx_http_fishchat_files_thumb_size(int64_t dw, int64_t dh, int64_t *tw,
    int64_t *th)
{
    int64_t  side;

    side = ngx_max(dw, dh);

    if (side <= NGX_HTTP_FISHCHAT_FILES_THUMB) {
        *tw = dw;
        *th = dh;
        return;
    }

    *tw = ngx_max((dw * NGX_HTTP_FISHCHAT_FILES_THUMB + side / 2) / side, 1);
    *th = ngx_max((dh * NGX_HTTP_FISHCHAT_FILES_THUMB + side / 2) / side, 1);
}


/* a picture with transparency laid over white: a JPEG has no alpha */

static void
ngx_http_fishchat_files_over_white(AVFrame *rgba)
{
    u_char      *p;
    ngx_int_t    x, y;
    ngx_uint_t   a;

    for (y = 0; y < rgba->height; y++) {
        p = rgba->data[0] + y * rgba->linesize[0];

        for (x = 0; x < rgba->width; x++, p += 4) {
            a = p[3];
            p[0] = (p[0] * a + 255 * (255 - a) + 127) / 255;
            p[1] = (p[1] * a + 255 * (255 - a) + 127) / 255;
            p[2] = (p[2] * a + 255 * (255 - a) + 127) / 255;
            p[3] = 255;
        }
    }
}


static ngx_int_t
ngx_http_fishchat_files_scale(ngx_http_fishchat_files_ctx_t *ctx,
    AVFrame *src, AVFrame *dst)
{
    int                  *inv, *table, srange, drange, br, co, sa;
    struct SwsContext    *sws;

    sws = sws_getContext(src->width, src->height, src->format,
                         dst->width, dst->height, dst->format,
                         SWS_BICUBIC, NULL, NULL, NULL);
    if (sws == NULL) {
        return ngx_http_fishchat_files_fail(ctx->pr, "no scaler", 0);
    }

    /* a YUV source's own matrix and range, if it says */

    if (sws_getColorspaceDetails(sws, &inv, &srange, &table, &drange,
                                 &br, &co, &sa)
        >= 0)
    {
        if (src->colorspace != AVCOL_SPC_UNSPECIFIED
            && src->colorspace != AVCOL_SPC_RGB)
        {
            inv = (int *) sws_getCoefficients(src->colorspace);
        }

        if (src->color_range == AVCOL_RANGE_JPEG) {
            srange = 1;
        }

        (void) sws_setColorspaceDetails(sws, inv, srange, table, drange,
                                        br, co, sa);
    }

    (void) sws_scale(sws, (const uint8_t * const *) src->data, src->linesize,
                     0, src->height, dst->data, dst->linesize);

    sws_freeContext(sws);

    return NGX_OK;
}


/* RGBA turned clockwise by 90, 180 or 270 degrees */

static void
ngx_http_fishchat_files_rotate(AVFrame *src, AVFrame *dst,
    ngx_uint_t rotation)
{
    int        x, y, w, h;
    uint32_t  *d;

    w = src->width;
    h = src->height;

#define ngx_http_fishchat_files_px(f, r, c)                                   \
    ((uint32_t *) ((f)->data[0] + (size_t) (r) * (f)->linesize[0]))[c]

    for (y = 0; y < dst->height; y++) {
        d = (uint32_t *) (dst->data[0] + (size_t) y * dst->linesize[0]);

        for (x = 0; x < dst->width; x++) {
            switch (rotation) {

            case 90:
                d[x] = ngx_http_fishchat_files_px(src, h - 1 - x, y);
                break;

            case 180:
                d[x] = ngx_http_fishchat_files_px(src, h - 1 - y, w - 1 - x);
                break;

            default: /* 270 */
                d[x] = ngx_http_fishchat_files_px(src, x, w - 1 - y);
            }
        }
    }

#undef ngx_http_fishchat_files_px
}


/* the JPEG, written to "<thumb>.tmp" then renamed */

static ngx_int_t
ngx_http_fishchat_files_jpeg(ngx_http_fishchat_files_ctx_t *ctx,
    AVFrame *yuv)
{
    int                               err;
    u_char                           *p, tmp[NGX_MAX_PATH + sizeof(".tmp")];
    ssize_t                           n;
    ngx_fd_t                          fd;
    ngx_int_t                         rc;
    const AVCodec                    *codec;
    AVCodecContext                   *enc;
    ngx_http_fishchat_files_probe_t  *pr;

    pr = ctx->pr;

    codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (codec == NULL) {
        return ngx_http_fishchat_files_fail(pr, "no mjpeg encoder", 0);
    }

    enc = avcodec_alloc_context3(codec);
    if (enc == NULL) {
        return ngx_http_fishchat_files_fail(pr, "no memory", 0);
    }

    rc = NGX_ERROR;

    enc->width = yuv->width;
    enc->height = yuv->height;
    enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
    enc->color_range = AVCOL_RANGE_JPEG;
    enc->time_base = (AVRational) { 1, 25 };
    enc->thread_count = 1;
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * NGX_HTTP_FISHCHAT_FILES_THUMB_QUALITY;

    err = avcodec_open2(enc, codec, NULL);
    if (err < 0) {
        (void) ngx_http_fishchat_files_fail(pr, "the mjpeg encoder", err);
        goto done;
    }

    yuv->quality = enc->global_quality;
    yuv->pts = 0;

    err = avcodec_send_frame(enc, yuv);

    if (err >= 0) {
        (void) avcodec_send_frame(enc, NULL);
        err = avcodec_receive_packet(enc, ctx->pkt);
    }

    if (err < 0) {
        (void) ngx_http_fishchat_files_fail(pr, "encoding", err);
        goto done;
    }

    (void) ngx_snprintf(tmp, sizeof(tmp), "%s.tmp%Z", pr->thumb);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1,
                         "open() failed (%d)", ngx_errno);
        *p = '\0';
        goto done;
    }

    n = ngx_write_fd(fd, ctx->pkt->data, ctx->pkt->size);

    if (n != ctx->pkt->size) {
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1,
                         "write() failed (%d)", n < 0 ? ngx_errno : 0);
        *p = '\0';
        (void) ngx_close_file(fd);
        (void) ngx_delete_file(tmp);
        goto done;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1,
                         "close() failed (%d)", ngx_errno);
        *p = '\0';
        (void) ngx_delete_file(tmp);
        goto done;
    }

    if (ngx_rename_file(tmp, pr->thumb) == NGX_FILE_ERROR) {
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1,
                         "rename() failed (%d)", ngx_errno);
        *p = '\0';
        (void) ngx_delete_file(tmp);
        goto done;
    }

    rc = NGX_OK;

done:

    av_packet_unref(ctx->pkt);
    avcodec_free_context(&enc);

    return rc;
}


/* past the deadline, libavformat gives up at its next check */

static int
ngx_http_fishchat_files_interrupt(void *data)
{
    return ngx_http_fishchat_files_expired(data);
}


static ngx_uint_t
ngx_http_fishchat_files_expired(ngx_http_fishchat_files_probe_t *pr)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000 > pr->deadline;
}


static ngx_int_t
ngx_http_fishchat_files_fail(ngx_http_fishchat_files_probe_t *pr,
    const char *what, int err)
{
    u_char  *p;
    char     text[AV_ERROR_MAX_STRING_SIZE];

    if (err < 0 && av_strerror(err, text, sizeof(text)) == 0) {
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1, "%s: %s", what, text);

    } else {
        p = ngx_snprintf(pr->err, sizeof(pr->err) - 1, "%s", what);
    }

    *p = '\0';

    return NGX_ERROR;
}


/* "thumbnail: ...", "waveform: ...": what is missing, in an NGX_OK */

static void
ngx_http_fishchat_files_prefix(ngx_http_fishchat_files_probe_t *pr,
    const char *what)
{
    u_char  *p, err[sizeof(pr->err)];

    ngx_memcpy(err, pr->err, sizeof(err));

    p = ngx_snprintf(pr->err, sizeof(pr->err) - 1, "%s: %s", what, err);
    *p = '\0';
}
