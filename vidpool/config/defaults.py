"""Every configuration key with its default and a one-line meaning (PySlowFast names).

Read once, at the edge (the vidpool command, the builders); never mutated at run time.
"""
from fvcore.common.config import CfgNode

_C = CfgNode()

_C.MODEL = CfgNode()
_C.MODEL.ARCH = "r3d_50"          # registered model name, see vidpool.models.list_models()
_C.MODEL.NUM_CLASSES = 400        # classifier outputs
_C.MODEL.POOL = "max"             # method of every non-global pool (vidpool.ops.list_pools(); max = original)
_C.MODEL.POOL_COUNT_INCLUDE_PAD = True  # MODEL.POOL avg: padding cells count in each window's mean (torch's default) | False: the mean of the real cells (as every other method's windows)
_C.MODEL.SYNC_BN = False          # DDP on GPUs: batch-norm statistics over all processes' batches (SyncBatchNorm)
_C.MODEL.CHANNELS_LAST = False   # model weights and clips in channels_last_3d layout: 1.1-1.7x faster 3D-CNN training on CPU (oneDNN); measure first on GPU
_C.MODEL.HEAD_POOL = "avg"        # global pool before the classifier: avg | max | softpool
_C.MODEL.DROPOUT_RATE = 0.5       # dropout before the classifier
_C.MODEL.BASE_WIDTH = 64          # 3D ResNets (r3d, r(2+1)d, SRTG): stem channels, stages 1x-8x of it; I3D: channels x it / 64
_C.MODEL.I3D_TF_SAME = False      # i3d: pytorch-i3d's TensorFlow SAME padding, zero-padded pools and 2x7x7 head (set for its weights)
_C.MODEL.SRTG_PLACE = "final"     # SRTG models: where the SR block sits (start|top|mid|end|final)
_C.MODEL.SRTG_GATE = "cycle"      # SRTG models: temporal gate (none|cycle)
_C.MODEL.SRTG_GATE_FROM_EPOCH = 0  # SRTG models: first epoch with the gate on
_C.MODEL.SRTG_HIDDEN = "width"    # SRTG models: LSTM hidden size capped at the block width | "channels" (uncapped)
_C.MODEL.SRTG_RECALIB = "residual"  # vidpool's SRTG: x * (1 + h) (residual) | x * h (original, as published)
_C.MODEL.SRTG_GATE_COMPARE = "recalibrated"  # cycle check of the squeezed frames against s * scale | h (as published)

_C.RNG_SEED = 0                   # seeds python, numpy, torch and the data loader workers
_C.OUTPUT_DIR = "./output"        # run folder: config.yaml, log.txt, stats.jsonl, checkpoints/, runs/, predictions.csv
_C.DEVICE = "auto"                # auto (CUDA when available, else CPU) | cpu | cuda
_C.LOG_PERIOD = 10                # iterations between plain progress lines (no interactive terminal)

_C.TRAIN = CfgNode()
_C.TRAIN.ENABLE = True            # run training (vidpool train)
_C.TRAIN.DATASET = "kinetics"     # hacs | kinetics | ucf101 (training and validation data)
_C.TRAIN.BATCH_SIZE = 64          # clips per step, over all processes
_C.TRAIN.EVAL_PERIOD = 1          # epochs between validations (and after the last epoch); 0: none
_C.TRAIN.CHECKPOINT_PERIOD = 1    # epochs between checkpoints (and after the last epoch)
_C.TRAIN.CHECKPOINT_ITERS = 0     # also checkpoint every this many iterations inside an epoch (0: off)
_C.TRAIN.KEEP_CHECKPOINTS = 0     # keep only the newest N end-of-epoch checkpoints (0: all); older mid-epoch ones go
_C.TRAIN.KEEP_PERIOD = 0          # with KEEP_CHECKPOINTS: also keep every epoch that is a multiple of this (0: none)
_C.TRAIN.AUTO_RESUME = True       # continue from the newest valid checkpoint in OUTPUT_DIR/checkpoints
_C.TRAIN.CHECKPOINT_FILE_PATH = ""  # start a new run from these weights (all unless TRAIN.FINETUNE): a file, or a run folder (its last epoch's checkpoint)
_C.TRAIN.CHECKPOINT_TYPE = "auto"  # format of CHECKPOINT_FILE_PATHs: auto|vidpool|pyslowfast|hara|pytorch_i3d|torchvision|srtg
_C.TRAIN.CHECKPOINT_TRUSTED = False  # allow checkpoint files that need full unpickling (it can run code from the file)
_C.TRAIN.FINETUNE = False         # load only the backbone of CHECKPOINT_FILE_PATH; new classifier if classes differ
_C.TRAIN.FREEZE_STAGES = 0        # fine-tuning: freeze the stem (1) and the first stages (2..)
_C.TRAIN.BACKBONE_LR_SCALE = 1.0  # fine-tuning: LR factor of every parameter outside the classifier
_C.TRAIN.MIXED_PRECISION = False  # autocast training and testing (the dtype: MIXED_PRECISION_DTYPE)
_C.TRAIN.MIXED_PRECISION_DTYPE = "auto"  # auto (fp16 on CUDA, bf16 on CPU), float16 (with a GradScaler) or bfloat16
_C.TRAIN.LABEL_SMOOTHING = 0.0    # cross-entropy label smoothing
_C.TRAIN.CLIP_GRAD_NORM = 0.0     # clip the gradient norm to this (0: off)
_C.TRAIN.PRECISE_BN = False       # recompute BN statistics on training batches before each validation and at the end
_C.TRAIN.PRECISE_BN_BATCHES = 50  # batches for precise BN

_C.SOLVER = CfgNode()
_C.SOLVER.BASE_LR = 0.1           # learning rate at a total batch of TRAIN.BATCH_SIZE
_C.SOLVER.LR_POLICY = "steps_with_relative_lrs"  # steps_with_relative_lrs | cosine
_C.SOLVER.STEPS = [0, 40, 80]     # steps policy: epochs where each LR phase starts
_C.SOLVER.LRS = [1, 0.1, 0.01]    # steps policy: LR of each phase relative to BASE_LR
_C.SOLVER.GAMMA = 0.1             # kept for PySlowFast configs (LRS already gives the factors)
_C.SOLVER.MAX_EPOCH = 100         # epochs
_C.SOLVER.COSINE_END_LR = 0.0     # cosine policy: final LR
_C.SOLVER.MOMENTUM = 0.9          # SGD momentum
_C.SOLVER.NESTEROV = True         # Nesterov momentum
_C.SOLVER.WEIGHT_DECAY = 1e-4     # L2 weight decay
_C.SOLVER.ZERO_WD_1D_PARAM = False  # no weight decay on BN weights and biases
_C.SOLVER.WARMUP_EPOCHS = 0.0     # linear warm-up length in epochs
_C.SOLVER.WARMUP_START_LR = 0.01  # warm-up starting LR

_C.TEST = CfgNode()
_C.TEST.ENABLE = True             # run multi-view testing (vidpool test, and after training)
_C.TEST.CHECKPOINT_FILE_PATH = ""  # weights to test: a file or a run folder ("" = the newest checkpoint in OUTPUT_DIR)
_C.TEST.DATASET = "kinetics"      # hacs | kinetics | ucf101 (test data)
_C.TEST.SPLIT = "test"            # annotation split the test reads: val | test (HACS and Kinetics-700 test labels are withheld)
_C.TEST.BATCH_SIZE = 8            # clips per test step, over all processes
_C.TEST.NUM_ENSEMBLE_VIEWS = 10   # evenly spaced clips per test video
_C.TEST.NUM_SPATIAL_CROPS = 3     # 1 (centre) or 3 (left, centre, right) crops per clip

_C.DATA = CfgNode()
_C.DATA.PATH_TO_DATA_DIR = ""     # folder of the annotation files (CSV / JSON / ucfTrainTestlist)
_C.DATA.PATH_PREFIX = ""          # root of the video files ("" = PATH_TO_DATA_DIR)
_C.DATA.ANNOTATION_FILE = ""      # HACS: annotation file name in PATH_TO_DATA_DIR ("" = HACS_clips_v1.1.1.csv)
_C.DATA.CLASS_NAMES_FILE = ""     # class list, one per line, in label order ("" = the official list; not UCF-101)
_C.DATA.HACS_NEGATIVES = "skip"   # HACS negative clips: skip | background (one extra class after the 200)
_C.DATA.UCF101_SPLIT = 1          # UCF-101 official split 1, 2 or 3
_C.DATA.SKIP_BAD_ROWS = False     # skip malformed annotation rows with a warning instead of stopping
_C.DATA.DECODER = "pyav"          # pyav | decord | torchcodec
_C.DATA.DECODE_DEVICE = "cpu"     # cpu | cuda (torchcodec on the GPU: DATA_LOADER.NUM_WORKERS 0 or START_METHOD spawn)
_C.DATA.FRAME_CACHE = ""          # folder of decoded frames, each video decoded once ("" = decode every clip; small datasets)
_C.DATA.NUM_FRAMES = 16           # frames per clip
_C.DATA.SAMPLING_RATE = 4         # frames between clip frames, counted at DATA.TARGET_FPS
_C.DATA.TARGET_FPS = 30           # frame rate the sampling rate refers to (clips span the same time at any fps)
_C.DATA.SHORT_CLIPS = "repeat"    # when a video is shorter than a clip: repeat its last frame | loop
_C.DATA.TRAIN_JITTER_SCALES = [256, 320]  # training: random short side in [min, max] before cropping
_C.DATA.TRAIN_CROP_SIZE = 224     # training (and validation) crop size
_C.DATA.TEST_CROP_SIZE = 256      # testing: short side and crop size
_C.DATA.RANDOM_FLIP = True        # training: horizontal flip with probability 0.5
_C.DATA.MEAN = [0.45, 0.45, 0.45]  # per-channel mean of [0, 1] pixels
_C.DATA.STD = [0.225, 0.225, 0.225]  # per-channel standard deviation
_C.DATA.MAX_RETRIES = 10          # training: unreadable videos replaced in a row before giving up

_C.DATA_LOADER = CfgNode()
_C.DATA_LOADER.NUM_WORKERS = 4    # decoding processes per training process (0: decode in the main process)
_C.DATA_LOADER.PIN_MEMORY = True  # pinned host memory (used only with CUDA)
_C.DATA_LOADER.PERSISTENT_WORKERS = True  # keep workers alive between epochs (with NUM_WORKERS > 0)
_C.DATA_LOADER.START_METHOD = ""  # how workers start: fork, spawn or forkserver ("": the platform's default)

_C.MULTIGRID = CfgNode()  # multigrid training (Wu et al. 2020); names and defaults as in PySlowFast
_C.MULTIGRID.LONG_CYCLE = False    # train on smaller clips with larger batches first, within each LR step
_C.MULTIGRID.SHORT_CYCLE = False   # vary the crop from batch to batch (SHORT_CYCLE_FACTORS of the default crop)
_C.MULTIGRID.EPOCH_FACTOR = 1.5    # train this many times the configured epochs (multigrid's iterations are cheaper)
_C.MULTIGRID.LONG_CYCLE_FACTORS = [[0.25, 0.5 ** 0.5], [0.5, 0.5 ** 0.5], [0.5, 1.0], [1.0, 1.0]]  # (frames, crop) factors
_C.MULTIGRID.SHORT_CYCLE_FACTORS = [0.5, 0.5 ** 0.5]  # crop factors of the two smaller short-cycle shapes
_C.MULTIGRID.SHORT_CYCLE_LR_SCALE = False  # short cycle: each batch's LR times its size over the phase's batch
                                   # (linear scaling, as the long cycle's phases get); False: the phase's LR for
                                   # every batch, as in PySlowFast
_C.MULTIGRID.FINETUNE_HOLD = 0.5   # long cycle: share of the fine-tuning phase (the epochs after the last step)
                                   # kept at the LR of the phase before it, as in PySlowFast; 0: all of it at the
                                   # last step's LR
_C.MULTIGRID.BN_BASE_SIZE = 0      # clips per batch-norm statistics group as the batch grows (0: the per-process
                                   # TRAIN.BATCH_SIZE, what the same run without multigrid normalises over)

_C.TENSORBOARD = CfgNode()
_C.TENSORBOARD.ENABLE = True      # scalars under OUTPUT_DIR/runs


def get_cfg() -> CfgNode:
    """A fresh copy of the defaults."""
    return _C.clone()
