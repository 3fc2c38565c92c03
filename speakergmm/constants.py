"""The library's choices and defaults, in a leaf module that imports nothing: the modules
that implement them and the command line (which must start fast) read them from here."""

#: Scoring methods (:func:`speakergmm.backend.scoring.score`), the default first.
SCORING_METHODS = ("topc", "full", "linear")
#: Gaussians per frame for top-C scoring (Reynolds et al. 2000).
DEFAULT_C = 5
#: Score normalisations (:mod:`speakergmm.backend.scorenorm`).
NORM_METHODS = ("none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm")
#: MAP-adaptable parameter types, in canonical order (:mod:`speakergmm.gmm.adapt`).
ADAPTABLE = ("means", "weights", "variances")
#: UBM initialisations (:func:`speakergmm.gmm.ubm.train_ubm`).
UBM_INITS = ("split", "kmeans++")
#: Per-utterance feature normalisations (:func:`speakergmm.frontend.cmvn.normalize`).
NORMALISATIONS = ("cmvn", "cmn", "sliding_cmn", "sliding_cmvn", "warp", "none")
#: Feature config presets (:class:`speakergmm.frontend.features.FeatureConfig`).
FEATURE_PRESETS = ("wideband", "telephone")
#: Default verification threshold on the average per-frame LLR. With the bundled UBM on the
#: speechocean762 dev protocol (5 enrollment utterances, ~4 s tests, top-C scoring) it gives
#: 5.4% misses and 2.5% false alarms (the EER, 3.7%, is at about 0.075); 0 would accept
#: 12.8% of impostors. Scores depend on the UBM and on durations: calibrate for your data.
DEFAULT_THRESHOLD = 0.1
#: Enrollment audio (seconds of frames the front end keeps) below which a speaker model is
#: unreliable: through the wideband system built on the dev split, on the speechocean762
#: dev speakers (tests/benchmarks/bench_enroll_duration.py), the EER is 1.2% at 20 s, 2.9% at
#: 12 s, 4.6% at 8 s, 7.4% at 5 s, 11.7% at 3 s and 22% at 1 s.
MIN_ENROLL_SECONDS = 5.0
#: ``identify``'s default prior probability that the voice is one of the enrolled speakers
#: (verify's default prior of a claim stays 0.5). Chosen on the speechocean762 dev speakers,
#: unseen by the dev-split wideband system (tests/benchmarks/bench_conditions.py --identify:
#: 20 draws of who is enrolled; enrolled tests missed or misnamed / strangers named): all 62
#: enrolled 8.8% / -; 50 enrolled, 12 strangers 7.9% / 12.3%; 31 / 31 5.5% / 9.6%; 15 / 15
#: 3.5% / 9.4%. At 0.5 (a voice named only above LLR log M) the enrolled lost 17.2%, 15.6%,
#: 12.6%, 9.8%; at 0.95 strangers were named 20-26% of the time.
IDENTIFY_PRIOR = 0.85
#: A test recording below this many seconds of speech, or below this estimated SNR (dB,
#: WADA: :mod:`speakergmm.frontend.quality`), gets a note that the decision is unreliable.
#: Through the dev-split wideband system on the dev speakers (bench_conditions.py), the EER
#: is 1.2% on whole clean tests, 3.9% on 2 s and 9.4% on 1 s of them, and 16-17% in babble
#: at 10 dB or car noise at 5 dB, whose WADA estimates have medians of 14 dB and 5 dB;
#: 95% of clean tests are estimated above 24 dB.
MIN_TEST_SECONDS = 2.0
MIN_TEST_SNR_DB = 15.0
#: A test recording whose energy above 4.5 kHz is below this share of the whole (dB) went
#: through a phone band, and a wideband system's decision on it is unreliable (the same dev
#: tests, bench_conditions.py: every GSM-coded test is flagged, whose EER is 12.9%, and 1%
#: of clean ones).
MIN_UPPER_BAND_DB = -40.0

#: Bytes of stacked enrollment models (a ModelSet's kernel: M x K x (D+1) float32 for
#: means-only models) that trial-list scoring holds in each process. Models beyond it are
#: adapted from their statistics per test utterance, so that memory does not grow with the
#: number of models (VoxCeleb1-H: ~10^5 models, 12 GB at K = 512, D = 60).
MODEL_MEMORY = 256 << 20
#: Vector back-ends of ``speakergmm score --backend`` (:mod:`speakergmm.backend.vectors`).
VECTOR_BACKENDS = ("plda", "cosine")
#: Seconds of no-score zone on each side of a reference boundary when diarization is
#: scored (NIST's md-eval and Kaldi's recipes use 0.25).
DIARIZATION_COLLAR = 0.25
#: A speaker's pauses shorter than this are not turn boundaries, in the references
#: ``prepare conversations`` writes and in the turns ``diarize`` finds (NIST's RT convention:
#: pauses under 0.3 s do not end a segment).
BRIDGE_SECONDS = 0.3
