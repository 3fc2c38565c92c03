# Shared option parsing for the recipes (sourced after their settings block), in the manner
# of Kaldi's utils/parse_options.sh: "--some-name VALUE" sets the setting some_name, which
# must already exist; "-h/--help" prints the script's header comment. Then checks that
# speakergmm is on PATH.

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    --*)
      name="${1#--}"; name="${name//-/_}"
      if [ -z "${!name+set}" ] || [ $# -lt 2 ]; then
        echo "$(basename "$0"): unknown option or missing value: $1" >&2; exit 2
      fi
      printf -v "$name" '%s' "$2"; shift 2 ;;
    *) echo "$(basename "$0"): unexpected argument $1" >&2; exit 2 ;;
  esac
done
command -v speakergmm >/dev/null || {
  echo "$(basename "$0"): speakergmm is not on PATH (pip install -e .)" >&2; exit 2; }
