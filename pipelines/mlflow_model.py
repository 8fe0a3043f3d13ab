"""The registered MLflow model: the serving bundle behind MLflow's pyfunc interface.

Logged as "model from code" (MLflow reads this file, nothing is pickled). A data scientist
can load any version with ``mlflow.pyfunc.load_model("models:/selfie-recsys@champion")`` and
call ``predict`` on a frame with columns age, gender and optionally occupation and k.
"""

import mlflow
import pandas as pd

from recsys.serving import ServingBundle


class BundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.bundle = ServingBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        rows = []
        for record in model_input.to_dict("records"):
            vector = self.bundle.vector_for_demographics(
                age=record.get("age"), gender=record.get("gender"), occupation=record.get("occupation")
            )
            ids, scores = self.bundle.recommend(vector, k=k)
            rows.append({"item_ids": ids[0].tolist(), "scores": scores[0].tolist()})
        return pd.DataFrame(rows)


mlflow.models.set_model(BundleModel())
