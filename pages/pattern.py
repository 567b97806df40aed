"""Pattern: which (query, key) pairs the sidebar's configuration attends, next to full attention and BigBird's
block-sparse pattern; what each costs per layer; and how far a token's information travels through the layers.

Needs only the token count and the configuration: no model run."""
import streamlit as st

from lfviz.app import cache, layers, pattern, pattern_runs, routing

routing.ensure_app_routing()
ss = st.session_state
st.title("Attention pattern")
st.caption("Which query attends which key under the sidebar's configuration (layer and head from the sidebar), "
           "compared with full attention and BigBird, for this document's length. Dark = every pair in the cell "
           "is attended, white = none, light blue = a few (a global row passing through, a dilated band).")

runner, cfg = cache.current_runner(), cache.current_config()
if runner is None or cfg is None:
    st.stop()
causal = cache.is_causal(runner)  # a language model: keys at or before each query
text = ss.get("document", "")
if not text.strip():
    st.info("No document yet: pick a sample or paste text on the Document page.")
    st.stop()
with st.spinner("Tokenizing..."):
    tokens, notes = pattern.tokens(ss["model"], text, ss.get("question"))
n = len(tokens)
for note in notes:
    st.warning(note)
try:
    global_tokens = cfg.check_globals(n)
except ValueError as e:
    st.error(f"Configuration: {e}. Change the global token positions in the sidebar.")
    st.stop()
specs = cfg.resolve(runner.num_layers, runner.num_heads)
layer, head = int(ss["layer"]), int(ss["head"])

start, stop, cells, block, num_random = pattern.view_controls(n)
span = f"positions {start}–{stop - 1}" + ("" if (start, stop) == (0, n) else f" of {n}")
st.subheader(f"{n:,} tokens - {span}")
pattern.side_by_side(specs[layer], layer, head, n, tokens, global_tokens, start, stop, cells, block, num_random,
                     causal, runner.trained_sparse)
layers.strip(runner, cfg, n)
pattern.cost_section(specs, n, runner.num_heads, global_tokens, block, num_random, causal)
pattern.receptive_field(specs, n, global_tokens, causal)
layers.experiment(runner, cfg)
pattern_runs.section(runner, cfg, n, layer, head)
