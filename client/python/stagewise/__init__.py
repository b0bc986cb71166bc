"""stagewise: predictions from a Ludwig model served by stagewise, as a pandas DataFrame.

    import stagewise
    client = stagewise.Client("localhost:8001")
    predictions = client.predict(df, model="example")

`predict` returns what Ludwig's InferenceModule.predict(df) returns for the same frame: one
column "<feature>_<key>" per postprocessor output, one row per input row.
"""

from ._client import Client
from ._errors import Error, InputError

__version__ = "0.1.0"
__all__ = ["Client", "Error", "InputError", "__version__"]
