"""MLflow "models from code" entry point, stored with each logged latode model.

It only imports the installed latode, so a logged model holds no code of its own.
"""

from mlflow.models import set_model

from latode.tracking._pyfunc import LatodePyfuncModel

set_model(LatodePyfuncModel())
