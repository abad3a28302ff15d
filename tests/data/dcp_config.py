# A config.py laid out as Distributed-CellProfiler's: its keys, its quoting ('True' strings, a list of
# machine types, names computed from names above), and its own section of plugin switches. Values are a lab's
# that reads a public image set and writes into its own bucket.

APP_NAME = 'DistributedCP'
LOG_GROUP_NAME = APP_NAME

DOCKERHUB_TAG = 'cellprofiler/distributed-cellprofiler:2.0.0_4.2.4'

AWS_REGION = 'us-east-1'
AWS_PROFILE = 'default'
SSH_KEY_NAME = 'lab-key.pem'
AWS_BUCKET = 'lab-runs'              # the run's own files
SOURCE_BUCKET = 'public-images'      # images are read from here
WORKSPACE_BUCKET = 'lab-runs'        # pipelines and load_data files
DESTINATION_BUCKET = 'lab-results'   # results are written here
UPLOAD_FLAGS = '--acl bucket-owner-full-control'

ECS_CLUSTER = 'default'
CLUSTER_MACHINES = 3
TASKS_PER_MACHINE = 1
MACHINE_TYPE = ['m5.xlarge']
MACHINE_PRICE = 0.20
EBS_VOL_SIZE = 30
DOWNLOAD_FILES = 'False'

DOCKER_CORES = 4
CPU_SHARES = DOCKER_CORES * 1024
MEMORY = 15000
SECONDS_TO_START = 3*60

SQS_QUEUE_NAME = APP_NAME + 'Queue'
SQS_MESSAGE_VISIBILITY = 1*60
SQS_DEAD_LETTER_QUEUE = 'user_DeadMessages'

AUTO_MONITOR = 'True'
CREATE_DASHBOARD = 'True'
CLEAN_DASHBOARD = 'True'

CHECK_IF_DONE_BOOL = 'False'
EXPECTED_NUMBER_FILES = 7
MIN_FILE_SIZE_BYTES = 1
NECESSARY_STRING = ''

# plugins
USE_PLUGINS = 'False'
UPDATE_PLUGINS = 'False'
PLUGINS_COMMIT = 'False'
INSTALL_REQUIREMENTS = 'False'
REQUIREMENTS = ''
