"""Processing algorithms (one thin file each over :mod:`rscore.runtime`)."""

from .compress import CompressRasterAlgorithm
from .dehaze import DehazeAlgorithm
from .enhance_decoded import EnhanceDecodedAlgorithm
from .models import InstallModelAlgorithm, ListModelsAlgorithm
from .reference_super_resolve import ReferenceSuperResolveAlgorithm
from .remove_clouds import RemoveCloudsAlgorithm
from .restore import RestoreAlgorithm
from .super_resolve import SuperResolveAlgorithm

#: explicit list, no folder scanning
ALGORITHMS = (RestoreAlgorithm, DehazeAlgorithm, RemoveCloudsAlgorithm, SuperResolveAlgorithm,
              ReferenceSuperResolveAlgorithm, EnhanceDecodedAlgorithm, CompressRasterAlgorithm, ListModelsAlgorithm,
              InstallModelAlgorithm)
